"""Korean text as a TTS model should learn to say it, and as it is pronounced.

A TTS model learns to say the text it is given: "11시" has to become "열한 시" and "KBS" "케이비에스",
or the model learns digits and Latin letters it cannot pronounce. `spoken_form` writes out

- numbers, Sino-Korean (일, 이, 삼) or native Korean (하나, 둘, 셋) by the counter that follows: native
  before 시 (o'clock), 시간, 살, 개, 명, 번, 마리, 잔, 권, ... in their attributive forms (한, 두, 세, 네,
  스무), Sino-Korean before 분, 초, 원, 년, 월, 일, 층, 회, 등, 점, ... and for 100 and more, decimals and
  numbers with no counter; 100 is 백 and 10000 만 (not 일백, 일만), large numbers are grouped by 만/억/조
  and spaced by 만-units as Korean spelling has it;
- dates (2024-03-01, 2024.3.1), times (11:30), money (₩, $, 원, 3억 5천만 원), percentages, decimals
  (3.14 -> 삼 점 일사), negative numbers, fractions (1/2 -> 이 분의 일), scores and ratios (3:2 -> 삼 대 이),
  units (km, kg, ℃, km/h -> 시속 ... 킬로미터), phone numbers digit by digit with 공 for 0, ordinals
  (제1회, 첫 번째, 둘째) and ranges (3~5개 -> 세 개에서 다섯 개);
- Latin letters and acronyms as they are spoken in Korean (KBS -> 케이비에스, NASA -> 나사, MP3 -> 엠피쓰리);
  other Latin words (a brand, an English word) are left as written.

Punctuation is kept for prosody. `pronunciation` gives the Hangul as pronounced (text/korean_g2p.py).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

System = Literal["native", "sino"]

_DIGITS = "영일이삼사오육칠팔구"
_PHONE_DIGITS = "공일이삼사오육칠팔구"
_PLACES = ("천", "백", "십", "")
_MAN_UNITS = ("", "만", "억", "조", "경")
_NATIVE_TENS = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")
_NATIVE_ONES = ("", "하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉")
_NATIVE_ONES_BEFORE_NOUN = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")
_MONTHS = ("", "일월", "이월", "삼월", "사월", "오월", "유월", "칠월", "팔월", "구월", "시월", "십일월", "십이월")

# Counters and the numbers they take. Native-Korean counting stops at 99; from 100 on, and for decimals,
# every counter takes Sino-Korean numbers (백 개, 일 점 오 시간). Matched longest first (시간 before 시).
NATIVE_COUNTERS = (
    "시간",
    "시",
    "살",
    "개",
    "명",
    "번",
    "마리",
    "잔",
    "권",
    "대",
    "장",
    "병",
    "벌",
    "켤레",
    "그루",
    "송이",
    "자루",
    "채",
    "척",
    "통",
    "쌍",
    "줄",
    "끼",
    "판",
    "알",
    "조각",
    "봉지",
    "상자",
    "그릇",
    "접시",
    "가지",
    "군데",
    "곳",
    "사람",
    "배",
    "달",
    "곡",
    "편",
    "골",
    "번째",
    "째",
    "해",
    "차례",
)
SINO_COUNTERS = (
    "분",
    "초",
    "원",
    "년",
    "월",
    "일",
    "층",
    "회",
    "등",
    "점",
    "호",
    "호선",
    "번지",
    "번호",
    "세",
    "세기",
    "주",
    "주년",
    "주일",
    "개월",
    "개국",
    "인",
    "인분",
    "위",
    "차",
    "학년",
    "교시",
    "도",
    "쪽",
    "페이지",
    "퍼센트",
    "달러",
    "엔",
    "유로",
    "위안",
    "파운드",
    "킬로",
    "미터",
    "그램",
    "리터",
    "박",
    "년대",
    "분기",
    "배럴",
    "평",
    "선",
    "승",
    "패",
    "타",
    "연승",
    "연패",
)
_COUNTER_SYSTEM: dict[str, System] = {**{c: "sino" for c in SINO_COUNTERS}, **{c: "native" for c in NATIVE_COUNTERS}}
# 번 counts times (세 번) but numbers a thing (삼 번 출구): the word after it tells.
_NUMBERING_AFTER_BEON = ("출구", "버스", "타자", "선수", "문제", "방", "게이트", "홀", "트랙", "채널")

# Units written in Latin letters or symbols, read after a Sino-Korean number; a prefix goes before the number.
UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("시속", "킬로미터"),
    "m/s": ("초속", "미터"),
    "km/s": ("초속", "킬로미터"),
    "km²": ("", "제곱킬로미터"),
    "m²": ("", "제곱미터"),
    "cm²": ("", "제곱센티미터"),
    "m³": ("", "세제곱미터"),
    "km": ("", "킬로미터"),
    "cm": ("", "센티미터"),
    "mm": ("", "밀리미터"),
    "nm": ("", "나노미터"),
    "m": ("", "미터"),
    "kg": ("", "킬로그램"),
    "mg": ("", "밀리그램"),
    "g": ("", "그램"),
    "t": ("", "톤"),
    "ml": ("", "밀리리터"),
    "mL": ("", "밀리리터"),
    "l": ("", "리터"),
    "L": ("", "리터"),
    "cc": ("", "씨씨"),
    "°C": ("", "도"),
    "℃": ("", "도"),
    "°F": ("화씨", "도"),
    "℉": ("화씨", "도"),
    "°": ("", "도"),
    "%p": ("", "퍼센트포인트"),
    "%": ("", "퍼센트"),
    "‰": ("", "퍼밀"),
    "kWh": ("", "킬로와트시"),
    "kW": ("", "킬로와트"),
    "MW": ("", "메가와트"),
    "W": ("", "와트"),
    "V": ("", "볼트"),
    "mAh": ("", "밀리암페어시"),
    "A": ("", "암페어"),
    "Hz": ("", "헤르츠"),
    "kHz": ("", "킬로헤르츠"),
    "MHz": ("", "메가헤르츠"),
    "GHz": ("", "기가헤르츠"),
    "dB": ("", "데시벨"),
    "ha": ("", "헥타르"),
    "KB": ("", "킬로바이트"),
    "MB": ("", "메가바이트"),
    "GB": ("", "기가바이트"),
    "TB": ("", "테라바이트"),
    "kcal": ("", "킬로칼로리"),
    "cal": ("", "칼로리"),
    "ppm": ("", "피피엠"),
    "mph": ("시속", "마일"),
    "ms": ("", "밀리초"),
    "sec": ("", "초"),
    "min": ("", "분"),
    "h": ("", "시간"),
}
CURRENCY_SIGNS = {"₩": "원", "$": "달러", "€": "유로", "£": "파운드", "¥": "엔"}

LETTER_NAMES = dict(
    zip(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        (
            "에이",
            "비",
            "씨",
            "디",
            "이",
            "에프",
            "지",
            "에이치",
            "아이",
            "제이",
            "케이",
            "엘",
            "엠",
            "엔",
            "오",
            "피",
            "큐",
            "알",
            "에스",
            "티",
            "유",
            "브이",
            "더블유",
            "엑스",
            "와이",
            "제트",
        ),
    )
)
# Capitalised words said as words, not letter by letter, and a few very common Latin words.
LATIN_WORDS = {
    "NASA": "나사",
    "UNESCO": "유네스코",
    "UNICEF": "유니세프",
    "NATO": "나토",
    "OPEC": "오펙",
    "FIFA": "피파",
    "ASEAN": "아세안",
    "APEC": "에이펙",
    "COVID": "코비드",
    "AIDS": "에이즈",
    "TV": "티브이",
    "PC": "피시",
    "OK": "오케이",
    "CEO": "시이오",
    "IQ": "아이큐",
    "ok": "오케이",
    "pop": "팝",
    "NEWS": "뉴스",
    "news": "뉴스",
    "MP3": "엠피쓰리",
    "COVID-19": "코비드 나인틴",
}
ENGLISH_NUMBERS = ("제로", "원", "투", "쓰리", "포", "파이브", "식스", "세븐", "에잇", "나인")

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_CHUNK_BIG = rf"(?:{_NUM})[십백천]?[만억조]"
_AMOUNT = rf"(?:{_CHUNK_BIG}\s?)*(?:{_NUM})(?:[십백천]?[만억조]|[십백천](?![가-힣]))?"
_COUNTERS_RE = "|".join(sorted(map(re.escape, _COUNTER_SYSTEM), key=len, reverse=True))
_UNITS_RE = "|".join(sorted(map(re.escape, UNITS), key=len, reverse=True))
_SUFFIX = rf"(?:{_UNITS_RE})(?![A-Za-z])|(?:{_COUNTERS_RE})"
_RANGE = r"(?:\s?[~∼〜～]\s?|-(?=[\d,]+\s?(?:년|월|일|세기)))"  # 3~5개; 2020-2022년, not a score 3-2
_NUMBER = re.compile(
    rf"(?<![A-Za-z\d.,])(?<![A-Za-z\d]-)(?P<ordinal>제\s?)?(?P<currency>[₩$€£¥])?(?P<sign>(?<![\w)])[-−+])?"
    rf"(?P<amount>{_AMOUNT})"
    rf"(?:\s?(?P<suffix>{_SUFFIX}))?"
    rf"(?:{_RANGE}(?P<currency2>[₩$€£¥])?(?P<amount2>{_AMOUNT})(?:\s?(?P<suffix2>{_SUFFIX}))?)?"
)
# 010-1234-5678, 02) 123-4567, 123-4567 and the 4+4 service numbers (1588-1234), but not 2020-2022
_PHONE = re.compile(r"(?<![\d-])(?:(0\d{1,2})[-.)\s]\s?(\d{3,4})|(\d{3}|1[5-8]\d{2}))-(\d{4})(?![\d-]|\s?년)")
_DATE = re.compile(r"(?<![\d.])(\d{4})\s?([-./])\s?(\d{1,2})\s?\2\s?(\d{1,2})(?!\d)")
_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?(?![\d:])")
_RATIO = re.compile(r"(?<![\d:])(\d+)\s?:\s?(\d+)(?![\d:])")
_FRACTION = re.compile(r"(?<![\d/])(\d+)/(\d+)(?![\d/])")
_LATIN = re.compile(r"(?<![A-Za-z\d])[A-Za-z\d]*[A-Za-z][A-Za-z\d]*(?:[-&][A-Za-z\d]+)*")
# Compatibility characters read as their plain forms (full-width digits, ㎞, ℃ stays), without NFKC's
# decomposition of compatibility jamo (ㅋㅋ) into conjoining ones.
_COMPAT_BLOCKS = ((0x3380, 0x33FF), (0xFF01, 0xFF5E))


def sino(n: int) -> str:
    """Sino-Korean reading of a whole number: 0 영, 100 백, 10000 만, 15000 만 오천, 10^8 일억."""
    if n < 0:
        return "마이너스 " + sino(-n)
    if n == 0:
        return "영"
    if n >= 10**20:
        return "".join(_DIGITS[int(d)] for d in str(n))
    groups: list[str] = []
    for power, unit in enumerate(_MAN_UNITS):
        group = n // 10 ** (4 * power) % 10**4
        if group:
            groups.append(("" if group == 1 and unit == "만" else _sino_below_10000(group)) + unit)
    return " ".join(reversed(groups))


def _sino_below_10000(n: int) -> str:
    out = []
    for digit, place in zip(f"{n:04d}", _PLACES):
        d = int(digit)
        if d:
            out.append(place if d == 1 and place else _DIGITS[d] + place)
    return "".join(out)


def native(n: int, before_noun: bool = True) -> str:
    """Native-Korean reading of 1..99 (열한, 스무 before a counter; 열하나, 스물 alone); Sino-Korean otherwise."""
    if not 0 < n < 100:
        return sino(n)
    if before_noun and n == 20:
        return "스무"
    ones = _NATIVE_ONES_BEFORE_NOUN if before_noun else _NATIVE_ONES
    return _NATIVE_TENS[n // 10] + ones[n % 10]


def decimal(text: str) -> str:
    """'3.14' -> '삼 점 일사', '1,000' -> '천': grouping commas dropped, digits after the point one by one."""
    whole, _, fraction = text.replace(",", "").partition(".")
    spoken = sino(int(whole))
    return f"{spoken} 점 {''.join(_DIGITS[int(d)] for d in fraction)}" if fraction else spoken


def digit_by_digit(digits: str) -> str:
    """Phone numbers and codes: each digit, 0 as 공."""
    return "".join(_PHONE_DIGITS[int(d)] for d in digits)


def _amount(text: str) -> tuple[str, int | None]:
    """A written amount ('3억 5천만', '1,000', '1.5', '007') read aloud, and its value when it is a whole number."""
    chunks = re.findall(rf"({_NUM})([십백천]?)([만억조]?)", text)
    if any("." in num for num, _, _ in chunks):
        return " ".join(decimal(num) + small + big for num, small, big in chunks), None
    if len(chunks) == 1 and not chunks[0][1] and not chunks[0][2] and len(text) > 1 and text.startswith("0"):
        return digit_by_digit(text), None  # 007, 0.5 is handled above
    scale = {"": 1, "십": 10, "백": 100, "천": 1000, "만": 10**4, "억": 10**8, "조": 10**12}
    value = sum(int(num.replace(",", "")) * scale[small] * scale[big] for num, small, big in chunks)
    return sino(value), value


def _counter_system(counter: str, value: int, after: str) -> System:
    if counter == "대":  # 두 대 (cars), but 20대 (one's twenties) and 3대 1 (a score)
        return "native" if value < 10 and not re.match(r"\s?\d", after) else "sino"
    if counter == "번" and after.lstrip().startswith(_NUMBERING_AFTER_BEON):
        return "sino"
    return _COUNTER_SYSTEM.get(counter, "sino")


def _with_counter(amount: str, counter: str | None, before: str, after: str, ordinal: bool) -> str:
    """An amount and the counter after it, read as the counter wants ('11', '시' -> '열한 시')."""
    spoken, value = _amount(amount)
    if counter is None:
        return spoken
    if counter in UNITS:
        prefix, unit = UNITS[counter]
        if prefix and before.rstrip().endswith(prefix):
            prefix = ""  # 시속 80km/h
        return f"{prefix} {spoken} {unit}".strip()
    if value is None or ordinal:
        return f"{spoken} {counter}"
    if counter == "월" and 1 <= value <= 12:
        return _MONTHS[value]
    if counter in ("째", "번째") and value < 100:
        first = {1: "첫", 2: "둘", 3: "셋", 4: "넷"} if counter == "째" else {1: "첫"}
        return f"{first.get(value) or native(value)}{'째' if counter == '째' else ' 번째'}"
    if _counter_system(counter, value, after) == "native" and 0 < value < 100:
        return f"{native(value)} {counter}"
    return f"{spoken} {counter}"


def _number(m: re.Match[str]) -> str:
    before, after = m.string[: m.start()], m.string[m.end() :]
    if not m.group("suffix2") and not m.group("suffix") and re.match(r"[A-Za-z]", after):
        return m.group(0)  # 5G, 3D: a Latin token, read by _latin
    sign = {"-": "마이너스 ", "−": "마이너스 ", "+": "플러스 "}.get(m.group("sign") or "", "")
    suffix, suffix2 = m.group("suffix"), m.group("suffix2")
    ordinal = bool(m.group("ordinal"))
    currency = CURRENCY_SIGNS.get(m.group("currency") or m.group("currency2") or "")
    if currency and suffix is None and m.group("amount2") is None:
        suffix = currency
    if currency and m.group("amount2") is not None and suffix2 is None:
        suffix2 = currency
    if suffix is None and suffix2 is not None and suffix2 not in UNITS:
        suffix = suffix2  # 3~5개 -> 세 개에서 다섯 개
    if sign == "마이너스 " and suffix in ("°C", "℃", "°"):
        sign = "" if before.rstrip().endswith("영하") else "영하 "
    first = _with_counter(m.group("amount"), suffix, before, after, ordinal)
    if ordinal:
        first = "제" + first
    if m.group("amount2") is None:
        return sign + first
    return f"{sign}{first}에서 {_with_counter(m.group('amount2'), suffix2, before, after, False)}"


def _phone(m: re.Match[str]) -> str:
    return " ".join(digit_by_digit(part) for part in m.groups() if part)


def _date(m: re.Match[str]) -> str:
    year, _, month, day = m.groups()
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return m.group(0)
    return f"{sino(int(year))} 년 {_MONTHS[int(month)]} {sino(int(day))} 일"


def _time(m: re.Match[str]) -> str:
    hour, minute, second = m.groups()
    parts = [f"{native(int(hour)) if int(hour) else '영'} 시"]
    if int(minute) or second:
        parts.append(f"{sino(int(minute))} 분")
    if second and int(second):
        parts.append(f"{sino(int(second))} 초")
    return " ".join(parts)


def _fraction(m: re.Match[str]) -> str:
    return f"{sino(int(m.group(2)))} 분의 {sino(int(m.group(1)))}"


def _ratio(m: re.Match[str]) -> str:
    return f"{sino(int(m.group(1)))} 대 {sino(int(m.group(2)))}"


def _number_in_latin(digits: str) -> str:
    """A digit in a Latin token is said in English (3D 쓰리디, 5G 파이브지, A4 에이포); longer numbers are
    Sino-Korean as Koreans say them (G20 지이십, 300C 삼백씨)."""
    return ENGLISH_NUMBERS[int(digits)] if len(digits) == 1 else _amount(digits)[0]


def _latin(m: re.Match[str]) -> str:
    """A Latin token: known words as said, capitals letter by letter, digits as _number_in_latin says."""
    token = m.group(0)
    if token in LATIN_WORDS:
        return LATIN_WORDS[token]
    out = []
    parts = re.split(r"([-&])", token)
    for i, part in enumerate(parts):
        if part == "&":
            out.append("앤")  # R&D -> 알앤디
        elif part == "-":
            out.append(" " if parts[i + 1][:1].isdigit() else "")  # K-pop -> 케이팝, KTX-2 -> 케이티엑스 투
        else:
            out.extend(_latin_run(run) for run in re.findall(r"[A-Za-z]+|\d+", part))
    return "".join(out)


def _latin_run(run: str) -> str:
    if run.isdigit():
        return _number_in_latin(run)
    if run in LATIN_WORDS:
        return LATIN_WORDS[run]
    if run.isupper() or len(run) == 1:
        return "".join(LETTER_NAMES[ch.upper()] for ch in run)
    return run  # an English word (a name, a brand): left as written


def _plain_compat(text: str) -> str:
    return "".join(
        unicodedata.normalize("NFKC", ch) if any(lo <= ord(ch) <= hi for lo, hi in _COMPAT_BLOCKS) else ch
        for ch in text
    )


def spoken_form(text: str) -> str:
    """Korean text as it is read aloud: no digits, Latin acronyms spelled in Hangul, punctuation kept."""
    text = _plain_compat(text)
    if not re.search(r"[\dA-Za-z₩$€£¥%℃℉]", text):
        return " ".join(text.split())
    for pattern, read in (
        (_PHONE, _phone),
        (_DATE, _date),
        (_TIME, _time),
        (_FRACTION, _fraction),
        (_RATIO, _ratio),
        (_NUMBER, _number),
        (_LATIN, _latin),
    ):
        text = pattern.sub(read, text)
    text = re.sub(
        r"\d+", lambda m: digit_by_digit(m.group(0)) if m.group(0).startswith("0") else sino(int(m.group(0))), text
    )  # digits left in odd places (1.2.3): read, never kept
    return " ".join(text.split())


def pronunciation(text: str) -> str:
    """The spoken form as pronounced: liaison, tensification, nasalisation (text/korean_g2p.py)."""
    from nr4dl_tasks.text.korean_g2p import pronounce

    return pronounce(spoken_form(text))
