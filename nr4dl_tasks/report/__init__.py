"""The dataset report: what the media became, from the files the stages wrote (data.py), drawn as HTML (html.py)."""
