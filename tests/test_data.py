"""Tests of the plan transcription (calibration/data/*.csv) and its validating loader."""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from ningbo_sd.io import plain_decimal
from ningbo_sd.plan.data import (
    CLUSTERS,
    INDICATORS_PATH,
    OBSERVATIONS_PATH,
    TARGETS_PATH,
    DataFileError,
    decimals,
    load_indicators,
    load_observations,
    load_targets,
    parse_tags,
    tolerance_rule,
)

#: Rows whose number is not printed in the quote, and why.
IMPLICIT_NUMBER = {
    "observations": {
        "rd_intensity_2015_text": "derived: 2.16 − 0.72 = 1.44",
        "firms_2015": "derived: 8405 − 1142 = 7263",
    },
    "targets": {
        "gross_output_2035": "翻一番 = ×2, i.e. +100%",
        "gross_output_real_2035": "翻一番 = ×2, i.e. +100%, read in 2020 prices",
        "industry_share_of_gdp_2025": "基本稳定 = about the 2020 level of 40.7%",
    },
}

_NUMERAL_CHARS = "零一二三四五六七八九十百千万两"
_DIGITS_ZH = "零一二三四五六七八九"


# --------------------------------------------------------------------------- helpers


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _raw(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


RAW = {"observations": _raw(OBSERVATIONS_PATH), "targets": _raw(TARGETS_PATH)}


def _chinese_forms(value: float) -> set[str]:
    """Chinese-numeral spellings of a one-significant-digit integer (10 -> 十, 5000 -> 五千)."""
    if value <= 0 or value != int(value):
        return set()
    n = int(value)
    for power, unit in ((10000, "万"), (1000, "千"), (100, "百"), (10, "十"), (1, "")):
        if n % power == 0 and n // power < 10:
            digit = n // power
            forms = {_DIGITS_ZH[digit] + unit}
            if digit == 1 and unit:
                forms.add(unit)
            if digit == 2:
                forms.add("两" + unit)
            return forms
    return set()


def _number_in_quote(value_text: str, quote: str) -> bool:
    """Whether the quote prints the value as a standalone number (Arabic, 万-scaled or Chinese)."""
    value = abs(float(value_text))
    arabic = {value_text.strip().lstrip("+-"), plain_decimal(value)}
    if value >= 10000:
        arabic.add(plain_decimal(value / 10000) + "万")
    for form in arabic:
        if re.search(rf"(?<![\d.]){re.escape(form)}(?!\.?\d)", quote):
            return True
    for form in _chinese_forms(value):
        pattern = rf"(?<![{_NUMERAL_CHARS}]){re.escape(form)}(?![{_NUMERAL_CHARS}])"
        if re.search(pattern, quote):
            return True
    return False


def _section_texts(plan: str) -> dict[str, str]:
    """Map each place code (一(一)1, 五(二)专栏2, 表3-1, ...) to its squashed text."""
    texts: dict[str, list[str]] = defaultdict(list)
    top = sub = box = table = None
    para: int | None = None
    for line in plan.splitlines():
        stripped = line.strip()
        heading = re.match(
            r"^(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|\d+\.)", line
        )
        if table is not None:
            if not heading and (not stripped or line.startswith("\t") or len(stripped) <= 12):
                texts[table].append(line)
                continue
            table = None
        if m := re.match(r"^表(\d+-\d+)", stripped):
            table = f"表{m.group(1)}"
            texts[table].append(line)
            continue
        if m := re.match(r"^([一二三四五六七八九十]+)、", line):
            top, sub, para, box = m.group(1), None, None, None
        elif m := re.match(r"^（([一二三四五六七八九十]+)）", line):
            sub, para, box = m.group(1), None, None
        elif m := re.match(r"^(\d+)\.", line):
            para, box = int(m.group(1)), None
        elif m := re.match(r"^\t专栏(\d+)", line):
            box = int(m.group(1))
        if top is None:
            continue
        keys = [top]
        if sub is not None:
            keys.append(f"{top}({sub})")
            if box is not None:
                keys.append(f"{top}({sub})专栏{box}")
            elif para is not None:
                keys.append(f"{top}({sub}){para}")
        for key in keys:
            texts[key].append(line)
    return {k: _squash("".join(v)) for k, v in texts.items()}


def _table_rows(plan: str, title: str) -> list[list[str]]:
    """Data rows (cells) of a table of the plan; cells start with a tab, other lines continue."""
    lines = plan.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows: list[list[str]] = []
    cells: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip() and not line.startswith("\t"):
            if cells:
                rows.append(cells)
                cells = []
            continue
        if line.startswith("\t"):
            cells.append(line.strip())
        elif cells and len(line.strip()) <= 12:
            cells[-1] += line.strip()
        else:
            break
    if cells:
        rows.append(cells)
    return rows[1:]  # drop the header row


def _cell_numbers(cell: str) -> list[float]:
    cell = re.sub(r"比\d{4}年|（\d{4}）", "", cell)
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", cell)]


def _rounding(value_text: str) -> float:
    return 0.5 * 10.0 ** -decimals(value_text)


# --------------------------------------------------------------------------- quotes


@pytest.mark.parametrize("kind", ["observations", "targets"])
def test_every_quote_occurs_verbatim_in_the_plan(plan_text: str, kind: str) -> None:
    flat = _squash(plan_text)
    missing = [r["id"] for r in RAW[kind] if not r["quote"] or _squash(r["quote"]) not in flat]
    assert not missing, f"{kind}: quotes not found in the plan: {missing}"


@pytest.mark.parametrize("kind", ["observations", "targets"])
def test_every_quote_is_in_the_place_its_source_names(plan_text: str, kind: str) -> None:
    sections = _section_texts(plan_text)
    wrong = [
        (r["id"], r["source"])
        for r in RAW[kind]
        if _squash(r["quote"]) not in sections.get(r["source"], "")
    ]
    assert not wrong, f"{kind}: quote not inside its source section: {wrong}"


@pytest.mark.parametrize("kind", ["observations", "targets"])
def test_every_quote_prints_its_number(kind: str) -> None:
    allow = IMPLICIT_NUMBER[kind]
    missing = [
        (r["id"], r["value"], r["quote"])
        for r in RAW[kind]
        if r["value"].strip()
        and r["id"] not in allow
        and not _number_in_quote(r["value"], r["quote"])
    ]
    assert not missing, f"{kind}: the value is not printed in the quote: {missing}"


@pytest.mark.parametrize("kind", ["observations", "targets"])
def test_implicit_number_allowlist_is_tight(kind: str) -> None:
    by_id = {r["id"]: r for r in RAW[kind]}
    for row_id in IMPLICIT_NUMBER[kind]:
        assert row_id in by_id, f"allowlisted id {row_id!r} is not in {kind}"
        row = by_id[row_id]
        assert not _number_in_quote(row["value"], row["quote"]), (
            f"{row_id}: the quote prints the number, remove it from the allowlist"
        )


def test_number_check_rejects_a_wrong_number() -> None:
    assert _number_in_quote("2174.6", "新材料行业实现规上工业总产值2174.6亿元")
    assert not _number_in_quote("2174", "新材料行业实现规上工业总产值2174.6亿元")
    assert not _number_in_quote("6", "规上工业全员劳动生产率年均增速（%） 6.4")
    assert _number_in_quote("30000", "增长至2020年的3万件")
    assert _number_in_quote("5000", "4个具有国际影响力的五千亿级产业集群")
    assert not _number_in_quote("1000", "4个具有国际影响力的五千亿级产业集群")


# --------------------------------------------------------------------------- completeness


def test_every_row_of_table_1_1_is_transcribed(plan_text: str) -> None:
    obs = [r for r in RAW["observations"] if r["source"] == "表1-1"]
    rows = _table_rows(plan_text, "表1-1")
    assert rows
    for cells in rows:
        assert len(cells) == 6, cells
        label = _squash(cells[1])
        values = [abs(float(r["value"])) for r in obs if label in _squash(r["quote"])]
        for number in _cell_numbers(cells[2]) + _cell_numbers(cells[4]):
            assert any(math.isclose(number, v) for v in values), (
                f"表1-1 '{cells[1]}': {number} not transcribed (found {values})"
            )


def test_every_row_of_table_3_1_is_transcribed(plan_text: str) -> None:
    obs = [r for r in RAW["observations"] if r["source"] == "表3-1"]
    targets = [r for r in RAW["targets"] if r["source"] == "表3-1"]
    rows = _table_rows(plan_text, "表3-1")
    assert rows
    for cells in rows:
        assert len(cells) == 4, cells
        label = _squash(cells[1])
        mine = [t for t in targets if label in _squash(t["quote"])]
        assert len(mine) == 1, f"表3-1 '{cells[1]}': {len(mine)} target rows"
        target = mine[0]
        base, goal = _cell_numbers(cells[2]), _cell_numbers(cells[3])
        if goal:
            assert math.isclose(abs(float(target["value"])), goal[0]), cells
        else:
            assert target["op"] == "done" and not target["value"], cells
        if base:
            assert math.isclose(abs(float(target["base_value"])), base[0]), cells
            values = [abs(float(r["value"])) for r in obs if label in _squash(r["quote"])]
            assert any(math.isclose(base[0], v) for v in values), (
                f"表3-1 '{cells[1]}': 2020 base {base[0]} not among observations"
            )
        else:
            assert not target["base_value"], cells


def test_cluster_scale_targets_cover_every_cluster_once() -> None:
    rows = load_targets()
    scale = rows[rows["indicator"] == "cluster_scale"]
    assert sorted(scale["cluster"]) == sorted(c for c in CLUSTERS if c != "other")
    for _, row in scale.iterrows():
        assert CLUSTERS[row["cluster"]][1] in row["quote"], row["id"]


# --------------------------------------------------------------------------- vocabularies


def test_ids_unique_and_indicators_known() -> None:
    indicators = _raw(INDICATORS_PATH)
    known = [r["id"] for r in indicators]
    assert len(known) == len(set(known))
    for kind, rows in RAW.items():
        ids = [r["id"] for r in rows]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        assert not dupes, f"{kind}: duplicate ids {dupes}"
        unknown = sorted({r["indicator"] for r in rows} - set(known))
        assert not unknown, f"{kind}: unknown indicators {unknown}"


def test_indicators_have_both_labels_and_are_used() -> None:
    frame = load_indicators()
    for _, row in frame.iterrows():
        assert row["label_en"].isascii() and row["label_en"], row["id"]
        assert re.search(r"[\u4e00-\u9fff]", row["label_zh"]), row["id"]
    used = {r["indicator"] for rows in RAW.values() for r in rows}
    unused = sorted(set(frame["id"]) - used)
    assert not unused, f"indicators never used: {unused}"


def test_loaders_return_typed_frames() -> None:
    obs = load_observations()
    assert len(obs) == len(RAW["observations"])
    assert obs["value"].notna().all() and (obs["tolerance"] > 0).all()
    assert str(obs["year"].dtype) == "Int64"
    targets = load_targets()
    assert len(targets) == len(RAW["targets"])
    assert targets["modelled"].dtype == bool
    done = targets["op"] == "done"
    assert targets.loc[done, "value"].isna().all()
    assert targets.loc[~done, "value"].notna().all()


# --------------------------------------------------------------------------- tolerances


def test_tolerances_follow_the_documented_rule() -> None:
    off = []
    for r in RAW["observations"]:
        expected = tolerance_rule(r["value"], r["measure"], r["basis"], parse_tags(r["note"]))
        if not math.isclose(float(r["tolerance"]), expected, rel_tol=1e-6):
            off.append((r["id"], r["tolerance"], expected))
    assert not off, f"tolerance differs from the rule: {off}"


def test_tolerance_rule_widens_for_tags_and_respects_rounding() -> None:
    plain = tolerance_rule("17887.1", "level", "nominal")
    assert math.isclose(plain, 0.02 * 17887.1, rel_tol=1e-5)
    assert math.isclose(tolerance_rule("17887.1", "level", "nominal", ["derived"]), 2 * plain)
    assert tolerance_rule("17887.1", "level", "nominal", ["duplicate"]) == plain
    assert tolerance_rule("-0.8", "change_abs", "share") == 0.05  # rounding floor
    assert tolerance_rule("2.16", "level", "share") < 0.5  # small shares: 5 % of value


# --------------------------------------------------------------------------- consistency


def _groups() -> dict[tuple, list[dict[str, str]]]:
    groups: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for r in RAW["observations"]:
        groups[(r["indicator"], r["measure"], r["year_start"], r["year"], r["basis"])].append(r)
    return groups


def test_each_quantity_has_exactly_one_primary_row() -> None:
    for key, rows in _groups().items():
        primary = [r["id"] for r in rows if not {"duplicate", "alternative"} & set(
            parse_tags(r["note"]))]  # fmt: skip
        assert len(primary) == 1, f"{key}: primary rows {primary}"


def test_differing_transcriptions_are_flagged_as_conflicts() -> None:
    for key, rows in _groups().items():
        for a in rows:
            for b in rows:
                gap = abs(float(a["value"]) - float(b["value"]))
                if gap > _rounding(a["value"]) + _rounding(b["value"]) + 1e-9:
                    assert "conflict" in parse_tags(a["note"]), (key, a["id"], b["id"])


def _primary_levels() -> dict[tuple[str, str, str], float]:
    return {
        (r["indicator"], r["basis"], r["year"]): float(r["value"])
        for r in RAW["observations"]
        if r["measure"] == "level"
        and not r["year_start"]
        and not {"duplicate", "alternative"} & set(parse_tags(r["note"]))
    }


def test_changes_agree_with_levels_unless_flagged() -> None:
    levels = _primary_levels()
    checked = 0
    for r in RAW["observations"]:
        if r["measure"] not in ("change_pp", "change_pct", "change_abs", "cagr_pct"):
            continue
        if "conflict" in parse_tags(r["note"]):
            continue
        a = levels.get((r["indicator"], r["basis"], r["year_start"]))
        b = levels.get((r["indicator"], r["basis"], r["year"]))
        if a is None or b is None:
            continue
        n = int(r["year"]) - int(r["year_start"])
        implied = {
            "change_pp": b - a,
            "change_abs": b - a,
            "change_pct": 100 * (b / a - 1),
            "cagr_pct": 100 * ((b / a) ** (1 / n) - 1),
        }[r["measure"]]
        assert abs(implied - float(r["value"])) <= float(r["tolerance"]), (r["id"], implied)
        checked += 1
    assert checked, "no change row could be checked against levels"


def test_average_growth_agrees_with_total_growth() -> None:
    total = {
        (r["indicator"], r["basis"], r["year_start"], r["year"]): float(r["value"])
        for r in RAW["observations"]
        if r["measure"] == "change_pct"
    }
    checked = 0
    for r in RAW["observations"]:
        key = (r["indicator"], r["basis"], r["year_start"], r["year"])
        if r["measure"] != "cagr_pct" or key not in total:
            continue
        n = int(r["year"]) - int(r["year_start"])
        implied = 100 * ((1 + total[key] / 100) ** (1 / n) - 1)
        assert abs(implied - float(r["value"])) <= float(r["tolerance"]), (r["id"], implied)
        checked += 1
    assert checked


@pytest.mark.parametrize(
    ("ratio", "numerator", "denominator"),
    [
        ("va_rate", "value_added", "gross_output"),
        ("profit_margin", "profit", "revenue"),
        ("cluster246_share", "cluster246_value_added", "value_added"),
    ],
)
def test_2020_ratios_support_the_reading_of_the_five_value_sentence(
    ratio: str, numerator: str, denominator: str
) -> None:
    obs = load_observations()
    level = obs[(obs["measure"] == "level") & obs["year_start"].isna() & (obs["year"] == 2020)]
    level = level[level["primary"]].set_index("indicator")
    implied = 100 * level.at[numerator, "value"] / level.at[denominator, "value"]
    assert abs(implied - level.at[ratio, "value"]) <= level.at[ratio, "tolerance"], implied


# --------------------------------------------------------------------------- loader errors


def _rewrite(src: Path, dst: Path, row: int, column: str, value: str) -> Path:
    """Copy a CSV, setting one cell of 1-based data row ``row``."""
    with src.open(encoding="utf-8", newline="") as fh:
        records = list(csv.reader(fh))
    records[row][records[0].index(column)] = value
    with dst.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(records)
    return dst


def _assert_names(err: DataFileError, path: Path, row: int, column: str, allowed: str) -> None:
    text = str(err)
    assert isinstance(err, ValueError)
    assert path.name in text
    assert f"data row {row} (CSV line {row + 1})" in text
    assert f"column '{column}'" in text
    assert allowed in text


CELL_ERRORS = [
    ("observations", 3, "indicator", "not_an_indicator", "indicators.csv"),
    ("observations", 5, "measure", "levle", "change_pct"),
    ("observations", 8, "basis", "nominall", "nominal, real, share, count, index"),
    ("observations", 11, "value", "12,5", "decimal number"),
    ("observations", 12, "tolerance", "-1", "> 0"),
    ("observations", 13, "year", "2020.5", "a year"),
    ("observations", 14, "unit", "万亿元", "indicator's unit"),
    ("observations", 15, "basis", "count", "one the indicator allows"),
    ("targets", 2, "op", "=>", ">=, <=, ~, done"),
    ("targets", 4, "basis", "nomimal", "nominal, real"),
    ("targets", 6, "value", "abc", "decimal number"),
    ("targets", 7, "modelled", "yes", "true or false"),
    ("targets", 9, "measure", "growth", "cagr_pct"),
    ("targets", 10, "indicator", "gdp", "indicators.csv"),
    ("targets", 1, "value", "", "only op 'done'"),
]


@pytest.mark.parametrize(("kind", "row", "column", "bad", "allowed"), CELL_ERRORS)
def test_bad_cell_raises_naming_file_row_and_column(
    tmp_path: Path, kind: str, row: int, column: str, bad: str, allowed: str
) -> None:
    src, load = {
        "observations": (OBSERVATIONS_PATH, load_observations),
        "targets": (TARGETS_PATH, load_targets),
    }[kind]
    path = _rewrite(src, tmp_path / f"bad_{kind}.csv", row, column, bad)
    with pytest.raises(DataFileError) as info:
        load(path)
    _assert_names(info.value, path, row, column, allowed)


@pytest.mark.parametrize(
    ("kind", "column"), [("observations", "tolerance"), ("targets", "modelled")]
)
def test_missing_column_raises(tmp_path: Path, kind: str, column: str) -> None:
    src, load = {
        "observations": (OBSERVATIONS_PATH, load_observations),
        "targets": (TARGETS_PATH, load_targets),
    }[kind]
    frame = pd.read_csv(src, dtype=str, keep_default_na=False).drop(columns=[column])
    path = tmp_path / f"no_{column}.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataFileError) as info:
        load(path)
    text = str(info.value)
    assert path.name in text and "header (CSV line 1)" in text
    assert f"column '{column}': missing" in text


@pytest.mark.parametrize(("src", "load"), [(OBSERVATIONS_PATH, load_observations),
                                           (TARGETS_PATH, load_targets)])  # fmt: skip
def test_duplicate_id_raises(tmp_path: Path, src: Path, load) -> None:
    with src.open(encoding="utf-8", newline="") as fh:
        first_id = list(csv.reader(fh))[2][0]
    path = _rewrite(src, tmp_path / "dupe.csv", 6, "id", first_id)
    with pytest.raises(DataFileError) as info:
        load(path)
    _assert_names(info.value, path, 6, "id", "unique")
    assert "first in data row 2" in str(info.value)


def test_bad_indicator_vocabulary_raises(tmp_path: Path) -> None:
    path = _rewrite(INDICATORS_PATH, tmp_path / "indicators.csv", 4, "basis", "nominal|money")
    with pytest.raises(DataFileError) as info:
        load_observations(indicators_path=path)
    _assert_names(info.value, path, 4, "basis", "nominal, real, share, count, index")


def test_good_copy_loads(tmp_path: Path) -> None:
    path = _rewrite(OBSERVATIONS_PATH, tmp_path / "ok.csv", 1, "note", "[approx] edited")
    frame = load_observations(path)
    assert frame.loc[0, "tags"] == ("approx",)


def test_generic_programme_indicators_are_targets_only() -> None:
    generic = {"programme_count", "programme_share"}
    used = sorted({r["id"] for r in RAW["observations"] if r["indicator"] in generic})
    assert not used, f"generic programme indicators used in observations: {used}"
    for r in RAW["targets"]:
        if r["indicator"] in generic:
            assert r["modelled"] == "false", r["id"]
