"""Hangul as pronounced: the Standard Pronunciation rules (표준 발음법) on mecab-ko's morphemes.

Korean spelling keeps morphemes; speech does not: 먹고 is said 먹꼬, 국물 궁물, 같이 가치, 좋아 조아.
A TTS model given the pronunciation learns the sounds directly. Several rules depend on the morphemes,
which is why an analyser is used: liaison moves a coda onto a following particle or ending (옷이 -> 오시)
but only its neutralised form onto a lexical morpheme (겉옷 -> 거돋); ㄷ/ㅌ palatalise before a grammatical
이 (밭이 -> 바치); a verb stem's ㄴ/ㅁ tenses its ending (신고 -> 신꼬); the modifier ending -ㄹ tenses the
next word (할 것 -> 할 껃); particle 의 is said 에 (나의 -> 나에); ㄴ is inserted in a compound before 이/야/
여/요/유 (솜이불 -> 솜니불); ㄹ + ㄷ/ㅅ/ㅈ tenses inside a Sino-Korean noun (갈등 -> 갈뜽, 팔십 -> 팔씹).

Implemented here because the Korean g2p packages on PyPI (g2pk, g2pk2, g2pkk) download NLTK's CMU
dictionary at import time and install packages at run time, which fails offline; python-mecab-ko
(BSD-3-Clause, Apache-2.0 dictionary, wheels only) gives the morphemes. Words are pronounced one by one
(no liaison across a space), except for the assimilations that are automatic in connected speech:
tensing after an obstruent or the modifier -ㄹ (다섯 개 -> 다섣 깨) and nasalisation (밥 먹어 -> 밤 머거), which
apply across a single space but not across punctuation. Optional variants take the
form the standard lists first. Compound tensing without a written ㅅ (길가 -> 길까) needs a lexicon and is
not done.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

ONSETS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
CODAS = (
    "",
    "ㄱ",
    "ㄲ",
    "ㄳ",
    "ㄴ",
    "ㄵ",
    "ㄶ",
    "ㄷ",
    "ㄹ",
    "ㄺ",
    "ㄻ",
    "ㄼ",
    "ㄽ",
    "ㄾ",
    "ㄿ",
    "ㅀ",
    "ㅁ",
    "ㅂ",
    "ㅄ",
    "ㅅ",
    "ㅆ",
    "ㅇ",
    "ㅈ",
    "ㅊ",
    "ㅋ",
    "ㅌ",
    "ㅍ",
    "ㅎ",
)
# A coda said alone: seven sounds (ㄱ ㄴ ㄷ ㄹ ㅁ ㅂ ㅇ), a cluster keeps one of its two.
NEUTRAL = {
    "ㄲ": "ㄱ",
    "ㅋ": "ㄱ",
    "ㄳ": "ㄱ",
    "ㄺ": "ㄱ",
    "ㅅ": "ㄷ",
    "ㅆ": "ㄷ",
    "ㅈ": "ㄷ",
    "ㅊ": "ㄷ",
    "ㅌ": "ㄷ",
    "ㅎ": "ㄷ",
    "ㅍ": "ㅂ",
    "ㄿ": "ㅂ",
    "ㅄ": "ㅂ",
    "ㄵ": "ㄴ",
    "ㄶ": "ㄴ",
    "ㄻ": "ㅁ",
    "ㄼ": "ㄹ",
    "ㄽ": "ㄹ",
    "ㄾ": "ㄹ",
    "ㅀ": "ㄹ",
}
# A cluster before a vowel: the first consonant stays, the second moves on.
SPLIT = {
    "ㄳ": ("ㄱ", "ㅅ"),
    "ㄵ": ("ㄴ", "ㅈ"),
    "ㄺ": ("ㄹ", "ㄱ"),
    "ㄻ": ("ㄹ", "ㅁ"),
    "ㄼ": ("ㄹ", "ㅂ"),
    "ㄽ": ("ㄹ", "ㅅ"),
    "ㄾ": ("ㄹ", "ㅌ"),
    "ㄿ": ("ㄹ", "ㅍ"),
    "ㅄ": ("ㅂ", "ㅅ"),
    "ㄶ": ("ㄴ", "ㅎ"),
    "ㅀ": ("ㄹ", "ㅎ"),
}
TENSE = {"ㄱ": "ㄲ", "ㄷ": "ㄸ", "ㅂ": "ㅃ", "ㅅ": "ㅆ", "ㅈ": "ㅉ"}
ASPIRATE = {"ㄱ": "ㅋ", "ㄷ": "ㅌ", "ㅂ": "ㅍ", "ㅈ": "ㅊ"}
NASAL = {"ㄱ": "ㅇ", "ㄷ": "ㄴ", "ㅂ": "ㅁ"}
OBSTRUENT_CODAS = set("ㄱㄷㅂ")
WITH_H = {"ㅎ": "", "ㄶ": "ㄴ", "ㅀ": "ㄹ"}
LEXICAL_TAGS = ("NN", "NP", "NR", "VV", "VA", "VX", "MM", "MAG", "XR", "IC")
STEM_TAGS = ("VV", "VA", "VX")
NOUN_TAGS = ("NNG", "NNP", "NR", "XR", "NNB")
COMPOUND_TAGS = ("NNG", "NNP")
N_INSERTION_VOWELS = set("ㅣㅑㅕㅛㅠ")
NO_N_INSERTION = ("요일",)  # 월요일 -> 워료일, 금요일 -> 그묘일: mecab-ko-dic splits them as compounds
# ㄴ + ㄹ is ㄴㄴ, not ㄹㄹ, before these Sino-Korean suffixes on a word of two syllables or more
# (의견란 -> 의견난, 생산량 -> 생산냥, 결단력 -> 결딴녁, 음운론 -> 으문논), but 권력 -> 궐력, 신라 -> 실라.
NASAL_BEFORE_SUFFIX = set("란량력령론료")


@dataclass
class Syllable:
    onset: str
    vowel: str
    coda: str
    first_tag: str  # tag of the morpheme this syllable's onset belongs to
    last_tag: str  # tag of the morpheme its coda belongs to
    starts_morpheme: bool
    word_start: bool
    morpheme: str  # the text of the morpheme from this syllable on (for the few lexical exceptions)

    def text(self) -> str:
        return chr(0xAC00 + (ONSETS.index(self.onset) * 21 + VOWELS.index(self.vowel)) * 28 + CODAS.index(self.coda))


@functools.cache
def _tagger() -> Any:
    """mecab-ko, loaded once per process (its dictionary is memory-mapped: 0.02 s, 80 MB)."""
    import mecab

    return mecab.MeCab()


def _morphemes(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, first tag, last tag) of each morpheme; a compound is split into its parts."""
    out = []
    for m in _tagger().parse(text):
        start, end = m.span
        f = m.feature
        parts = [p.split("/") for p in f.expression.split("+")] if f.expression and f.type == "Compound" else []
        if parts and "".join(p[0] for p in parts) == m.surface:
            for surface, tag, *_ in parts:
                out.append((start, start + len(surface), tag, tag))
                start += len(surface)
            continue
        tags = f.pos.split("+")
        out.append((start, end, tags[0], tags[-1]))
    return out


def _syllables(text: str) -> list[Syllable | str]:
    owner: dict[int, tuple[int, int, str, str]] = {}
    for start, end, first, last in _morphemes(text):
        for i in range(start, end):
            owner[i] = (start, end, first if i == start else last, last if i == end - 1 else first)
    out: list[Syllable | str] = []
    for i, ch in enumerate(text):
        code = ord(ch) - 0xAC00
        if not 0 <= code < 11172:
            out.append(ch)
            continue
        start, end, first, last = owner.get(i, (i, i + 1, "NNG", "NNG"))
        prev_is_syllable = bool(out) and isinstance(out[-1], Syllable)
        out.append(
            Syllable(
                ONSETS[code // 588],
                VOWELS[code // 28 % 21],
                CODAS[code % 28],
                first,
                last,
                starts_morpheme=start == i,
                word_start=not prev_is_syllable,
                morpheme=text[i:end],
            )
        )
    return out


def _is_lexical(tag: str) -> bool:
    return tag.startswith(LEXICAL_TAGS)


def _vowels(syls: list[Syllable]) -> None:
    """ㅢ: 의 at a word's start stays, particle 의 is 에, 의 elsewhere 이, ㅢ after a consonant ㅣ (희망 -> 히망)."""
    for s in syls:
        if s.vowel == "ㅢ" and s.onset != "ㅇ":
            s.vowel = "ㅣ"
        elif s.vowel == "ㅢ" and not s.word_start:
            s.vowel = "ㅔ" if s.first_tag == "JKG" else "ㅣ"


def _link(a: Syllable, b: Syllable) -> None:
    """ㅎ rules, palatalisation, ㄴ-insertion and liaison: what a coda does before the next syllable's onset."""
    coda, onset = a.coda, b.onset
    lexical_next = b.starts_morpheme and _is_lexical(b.first_tag)
    if coda in WITH_H:
        rest = WITH_H[coda]
        if onset in ASPIRATE:  # 놓고 -> 노코, 않던 -> 안턴
            a.coda, b.onset = rest, ASPIRATE[onset]
        elif onset == "ㅅ":  # 닿소 -> 다쏘
            a.coda, b.onset = rest, "ㅆ"
        elif onset == "ㄴ":  # 놓는 -> 논는, 않네 -> 안네, 뚫네 -> 뚤레 (ㄹ+ㄴ later)
            a.coda = rest or "ㄴ"
        elif onset == "ㅇ":  # 좋아 -> 조아, 많아 -> 마나
            a.coda = rest
            coda = rest
        else:
            a.coda = rest or "ㄷ"
        if onset != "ㅇ":
            return
    if onset == "ㅎ" and coda and coda not in "ㄴㄹㅁㅇ":  # 축하 -> 추카, 앉히다 -> 안치다, 닫히다 -> 다치다
        first, second = SPLIT.get(coda, ("", coda))
        base = "ㅈ" if second in "ㅈㅊ" else NEUTRAL.get(second, second)
        a.coda, b.onset = first, ASPIRATE.get(base, "ㅎ")
        if b.onset == "ㅌ" and b.vowel == "ㅣ" and not lexical_next:
            b.onset = "ㅊ"
        return
    if onset != "ㅇ" or not coda or coda == "ㅇ":
        return
    compound = (
        a.last_tag.startswith(COMPOUND_TAGS)
        and b.first_tag.startswith(COMPOUND_TAGS)
        and b.vowel in N_INSERTION_VOWELS
        and not b.morpheme.startswith(NO_N_INSERTION)
    )
    numeral = a.last_tag == b.first_tag == "NR" and b.text() == "육"
    if lexical_next and (compound or numeral):  # 솜이불 -> 솜니불, 색연필 -> 생년필, 십육 -> 심뉵 (not 일이 -> 이리)
        a.coda, b.onset = NEUTRAL.get(coda, coda), "ㄴ"
        return
    if lexical_next:  # 겉옷 -> 거돋: the coda's neutral form moves
        neutral = NEUTRAL.get(coda, coda)
        a.coda, b.onset = ("", neutral) if coda not in SPLIT else (SPLIT[coda][0], NEUTRAL.get(SPLIT[coda][1], "ㅇ"))
        return
    a.coda, b.onset = SPLIT.get(coda, ("", coda))  # 닭을 -> 달글, 없어 -> 업서 (-> 업써); 먹어 -> 머거
    if b.vowel == "ㅣ" and b.onset in "ㄷㅌ" and b.onset:  # 굳이 -> 구지, 같이 -> 가치, 밭이 -> 바치
        b.onset = "ㅈ" if b.onset == "ㄷ" else "ㅊ"


def _tense_and_assimilate(a: Syllable, b: Syllable, original: str, linked: bool) -> None:
    """Tensification, then nasalisation and ㄹ assimilation, on a neutralised coda and the next onset.

    `original` is the coda before neutralisation; `linked` says the onset came from that coda by liaison
    (앉아 -> 안자: the stem-final ㄴ tenses an ending's consonant, not its own moved ㅈ).
    """
    if original == "ㄺ" and b.onset == "ㄱ" and a.last_tag.startswith(STEM_TAGS):  # 맑게 -> 말께
        a.coda = "ㄹ"
    coda, onset = a.coda, b.onset
    stem_final = a.last_tag.startswith(STEM_TAGS) and b.starts_morpheme and b.first_tag.startswith("E")
    in_noun = not b.starts_morpheme or a.last_tag == b.first_tag == "NR"  # 갈등, and 팔/십 tagged apart
    if onset in TENSE and (
        coda in OBSTRUENT_CODAS
        or (original in ("ㄺ", "ㄼ", "ㄾ") and not linked)
        or (not linked and stem_final and original in ("ㄴ", "ㄵ", "ㅁ", "ㄻ"))  # 신고 -> 신꼬, 젊지 -> 점찌
        or (not linked and coda == "ㄹ" and a.last_tag.startswith("E"))  # 할수록 -> 할쑤록, 갈게 -> 갈께
        or (coda == "ㄹ" and onset in "ㄷㅅㅈ" and in_noun and a.last_tag.startswith(NOUN_TAGS))
    ):  # 갈등 -> 갈뜽, 팔십 -> 팔씹
        b.onset = TENSE[onset]
    onset = b.onset
    if coda in NASAL and onset in "ㄴㅁ":  # 국물 -> 궁물, 믿는 -> 민는, 밥맛 -> 밤맏
        a.coda = NASAL[coda]
    elif coda in "ㅁㅇ" and coda and onset == "ㄹ":  # 담력 -> 담녁, 종로 -> 종노
        b.onset = "ㄴ"
    elif coda in NASAL and onset == "ㄹ":  # 독립 -> 동닙, 협력 -> 혐녁
        a.coda, b.onset = NASAL[coda], "ㄴ"
    elif (coda, onset) == ("ㄴ", "ㄹ") and b.text() in NASAL_BEFORE_SUFFIX and not a.word_start:
        b.onset = "ㄴ"  # 의견란 -> 의견난
    elif (coda, onset) in (("ㄴ", "ㄹ"), ("ㄹ", "ㄴ")):  # 신라 -> 실라, 칼날 -> 칼랄
        a.coda, b.onset = "ㄹ", "ㄹ"


def pronounce(text: str) -> str:
    """The Hangul of `text` as pronounced; other characters (spaces, punctuation, Latin) are kept."""
    if not any(0xAC00 <= ord(ch) <= 0xD7A3 for ch in text):
        return text
    units = _syllables(text)
    syls = [u for u in units if isinstance(u, Syllable)]
    _vowels(syls)
    pairs = [
        (units[i], units[i + 1])
        for i in range(len(units) - 1)
        if isinstance(units[i], Syllable) and isinstance(units[i + 1], Syllable)
    ]
    onsets = {id(s): s.onset for s in syls}
    for a, b in pairs:
        _link(a, b)  # type: ignore[arg-type]
    originals = {id(s): s.coda for s in syls}
    for s in syls:  # 밟다 -> 밥따 is the exception to ㄼ -> ㄹ
        s.coda = "ㅂ" if s.coda == "ㄼ" and (s.onset, s.vowel) == ("ㅂ", "ㅏ") else NEUTRAL.get(s.coda, s.coda)
    for a, b in pairs:
        _tense_and_assimilate(a, b, originals[id(a)], onsets[id(b)] == "ㅇ" != b.onset)  # type: ignore[arg-type,union-attr]
    for i in range(len(units) - 2):  # across one space: only the automatic assimilations
        a, gap, b = units[i], units[i + 1], units[i + 2]
        if not (isinstance(a, Syllable) and gap == " " and isinstance(b, Syllable)):
            continue
        if b.onset in TENSE and (a.coda in OBSTRUENT_CODAS or (a.coda == "ㄹ" and a.last_tag == "ETM")):
            b.onset = TENSE[b.onset]  # 다섯 개 -> 다섣 깨; the modifier -ㄹ: 할 것 -> 할 껃, 갈 곳 -> 갈 꼳
        elif a.coda in NASAL and b.onset in "ㄴㅁ" and b.onset:
            a.coda = NASAL[a.coda]  # 밥 먹어 -> 밤 머거
    for s in syls:
        if s.onset in "ㅈㅉㅊ" and s.vowel == "ㅕ":  # 가져 -> 가저, 다쳐 -> 다처
            s.vowel = "ㅓ"
    return "".join(u.text() if isinstance(u, Syllable) else u for u in units)
