"""Chinese and English texts of the Panel app that no data file provides.

Lever, output and target labels come from their own files (``levers.yaml``,
``model/outputs.yaml``, the calibration data); this module holds only the app's own
words: titles, buttons, chart titles, family and cluster names.

It also holds the two functions through which every text that is not the app's own reaches
the page (:func:`html_text` for HTML panes, notifications and attributes, :func:`markdown_text`
for Markdown panes and the alert): URL values, uploaded files' names and contents, scenario
titles, data files' sources and error messages are data, never markup.
"""

from __future__ import annotations

import html
import re
from types import MappingProxyType

from ningbo_sd.io import excerpt

LANGUAGES: tuple[str, ...] = ("en", "zh")
#: The most characters of a message shown on the page (the alert and notifications).
MESSAGE_CHARS = 300
#: Markdown's punctuation (CommonMark lets a backslash escape any ASCII punctuation); ``&``,
#: ``<``, ``>``, ``"`` and ``'`` become HTML entities instead.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:=$%^,;/?@])")

_TEXTS: dict[str, tuple[str, str]] = {
    # page
    "app_title": (
        "Ningbo manufacturing 2021-2035: policy simulator",
        "宁波制造业高质量发展政策模拟器（2021-2035）",
    ),
    "loading": ("Loading the model…", "正在加载模型…"),
    "tab_results": ("Results", "模拟结果"),
    "tab_uncertainty": ("Uncertainty", "不确定性"),
    "tab_calibration": ("Calibration 2015-2020", "历史校准 2015-2020"),
    "tab_structure": ("Model structure", "模型结构"),
    "tab_review": ("Plan 2021-2025 review", "规划回顾 2021-2025"),
    "language": ("Language", "语言"),
    # sidebar
    "scenario": ("Scenario", "情景"),
    "reset": ("Reset to baseline", "恢复基准情景"),
    "upload": ("Open a scenario file (YAML)", "打开情景文件（YAML）"),
    "save_name": ("File name (letters, digits, _ and -)", "文件名（字母、数字、_ 和 -）"),
    "save_title": ("Scenario title", "情景名称"),
    "save": ("Save as scenario", "另存为情景"),
    "download_yaml": ("Download scenario (YAML)", "下载情景（YAML）"),
    "download_csv": ("Download this run (CSV)", "下载本次结果（CSV）"),
    "levers": ("Policy levers", "政策杠杆"),
    "step": ("step", "阶跃"),
    "ramp": ("ramp", "渐变"),
    "plan_target": ("plan", "规划目标"),
    "default": ("default", "默认值"),
    "range": ("range", "范围"),
    "to_plan": ("Set to plan target", "设为规划目标"),
    "family_investment": ("Investment", "投资"),
    "family_innovation": ("Innovation: R&D and talent", "创新：研发与人才"),
    "family_land": ("Land", "土地"),
    "family_energy": ("Energy", "能源"),
    "family_clusters": ("Cluster priorities", "产业集群优先"),
    # headline
    "big_output": ("Gross output 2035", "2035年工业总产值"),
    "big_ratio": ("2035 / 2020", "2035年 / 2020年"),
    "unit_100m": ("100 million yuan", "亿元"),
    # compare
    "pin": ("Pin this run", "固定当前结果"),
    "unpin": ("Clear pinned run", "清除固定结果"),
    "compare_with": ("Compare with scenario", "对比情景"),
    "none": ("(none)", "（无）"),
    "current": ("current", "当前"),
    "pinned": ("pinned", "已固定"),
    # charts
    "chart_gross_output": ("Gross industrial output", "规上工业总产值"),
    "chart_value_added": ("Value added", "规上工业增加值"),
    "chart_clusters": ("Gross output by cluster", "各产业集群工业总产值"),
    "chart_binding": ("Binding constraint", "约束类型"),
    "chart_land": ("Industrial land and the control line", "工业用地与工业控制线"),
    "chart_energy": ("Energy use and the quota", "能耗与能耗指标"),
    "chart_innovation": ("R&D intensity and effective invention patents", "研发强度与有效发明专利"),
    "level_2020": ("2020 level", "2020年水平"),
    "doubling": ("doubling of 2020", "2020年翻一番"),
    "year": ("year", "年份"),
    "nominal": ("nominal", "名义"),
    "real_2020": ("2020 prices", "2020年价"),
    "patents": ("effective invention patents", "有效发明专利"),
    "published": ("Published", "公开数据"),
    "published_key": ("published figure (hover for the source)", "公开发布数据（悬停查看出处）"),
    "col_source_published": ("Source", "出处"),
    "col_confidence": ("Confidence", "可信度"),
    "confidence_a": (
        "statistical bulletin or statistics bureau",
        "统计公报或统计局直接发布",
    ),
    "confidence_b": (
        "government work report or official release",
        "政府工作报告、官方媒体或部门发布",
    ),
    "confidence_c": ("secondary page, or derived", "二手转载或推算"),
    "capital": ("capital", "资本"),
    "land": ("land", "土地"),
    "energy": ("energy", "能源"),
    # scorecard
    "scorecard": ("Plan targets: scorecard", "规划目标完成情况"),
    "show_all_targets": (
        "Also list targets the model cannot compute",
        "同时列出模型无法计算的目标",
    ),
    "col_target": ("Target", "目标"),
    "col_simulated": ("Simulated", "模拟值"),
    "col_goal": ("Goal", "目标值"),
    "col_unit": ("Unit", "单位"),
    "col_met": ("Met?", "是否达成"),
    "col_probability": ("P(met)", "达成概率"),
    "met_yes": ("met", "达成"),
    "met_no": ("not met", "未达成"),
    "met_na": ("n/a", "不适用"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    # uncertainty
    "mc_samples": ("Samples", "样本数"),
    "mc_run": ("Run Monte Carlo", "运行蒙特卡洛模拟"),
    "mc_indicator": ("Indicator", "指标"),
    "mc_intro": (
        "Monte Carlo of the current lever settings over the uncertain assumptions. "
        "Bands: 5-95% and 25-75%; line: median.",
        "在当前政策设置下，对不确定假设进行蒙特卡洛抽样。色带：5-95%与25-75%分位；线：中位数。",
    ),
    "mc_not_run": ("Press the button to run.", "请点击按钮运行。"),
    "mc_done": ("{n} samples in {seconds:.1f} s", "{n}个样本，用时{seconds:.1f}秒"),
    "mc_stale": (
        "the levers have moved since: run again for the current settings",
        "此后政策杠杆已调整：请重新运行以反映当前设置",
    ),
    "band_90": ("5-95%", "5-95%"),
    "band_50": ("25-75%", "25-75%"),
    "band_predictive": ("5-95% with model error", "含模型误差的5-95%"),
    "median": ("median", "中位数"),
    # calibration
    "calibration_intro": (
        "The baseline run against the 2015-2020 figures of the plan (levels); "
        "bars show each figure's tolerance.",
        "基准情景与规划中2015-2020年数据（水平值）的对比；误差线为各数据的容差。",
    ),
    "observed": ("observed", "实际"),
    "model": ("model", "模型"),
    "col_year": ("Year", "年份"),
    "col_observed": ("Observed", "实际值"),
    "col_model": ("Model", "模型值"),
    "col_error": ("Error", "误差"),
    "col_tolerance": ("Tolerance", "容差"),
    "col_within": ("Within tolerance?", "是否在容差内"),
    "col_source": ("Plan source", "规划出处"),
    "col_use": ("In the fit", "是否参与拟合"),
    "use_fitted": ("fitted", "参与拟合"),
    "use_secondary": ("check only (another citation)", "仅核对（另一处引用）"),
    "use_not_fitted": ("not fitted", "未参与拟合"),
    "no_data": ("No data file yet: {path}", "尚无数据文件：{path}"),
    # structure
    "structure_intro": (
        "Stocks (boxes), flows (diamonds) and auxiliaries (circles) read from the model file; "
        "lines are dependencies. Hover for the equation; trace a variable to see what it "
        "depends on (blue) and what it drives (red).",
        "由模型文件生成的存量（方框）、流量（菱形）与辅助变量（圆点）；连线表示依赖关系。"
        "鼠标悬停可查看方程；追踪某一变量可查看它取决于哪些变量（蓝色）及影响哪些变量（红色）。",
    ),
    "show_constants": ("Show constants", "显示常量"),
    "trace": ("Trace a variable (or click one in the graph)", "追踪变量（或点击图中节点）"),
    "trace_none": ("(none)", "（无）"),
    "depends_on": ("Depends on", "取决于"),
    "used_by": ("Used by", "影响"),
    "nothing": ("nothing", "无"),
    "stock": ("stock", "存量"),
    "flow": ("flow", "流量"),
    "auxiliary": ("auxiliary", "辅助变量"),
    "constant": ("constant", "常量"),
    # plan review
    "review_title": ("Plan 2021-2025 review: the 2025 targets", "规划回顾：2025年目标"),
    "review_intro": (
        "Each 2025 target of the plan: what the model gives for the current settings, "
        "and the published outcome where one has been found (calibration/data/actuals.csv), "
        "with its source and confidence grade (A: statistical bulletin, B: government "
        "report or official release, C: secondary page or derived).",
        "规划的各项2025年目标：当前设置下的模型值，以及已找到的公开实际数据"
        "（calibration/data/actuals.csv）及其出处与可信度（A：统计公报；B：政府报告或官方发布；"
        "C：二手转载或推算）。",
    ),
    "review_summary": (
        "{targets} targets for 2025; {published} with a published outcome, "
        "{met} of them met in fact; the model agrees on {agree} of {published}.",
        "2025年目标{targets}项；{published}项有公开实际数据，其中{met}项实际已达成；"
        "模型判断与实际一致{agree}项（共{published}项）。",
    ),
    "review_only_published": (
        "Only targets with a published outcome",
        "仅显示有公开实际数据的目标",
    ),
    "col_model_now": ("Model (current settings)", "模型值（当前设置）"),
    "col_model_said": ("The model said", "模型判断"),
    "col_published": ("Published", "公开实际值"),
    "col_met_in_fact": ("Met in fact", "实际是否达成"),
    # the model's track record (review section)
    "track_title": (
        "Track record: published figures the model was not fitted to",
        "检验记录：模型未拟合的公开实际数据",
    ),
    "track_intro": (
        "How far the baseline (this calibration) missed the published figures of 2015-2025 "
        "it was not fitted to, by indicator: the same figures as `ningbo-sd check`. City "
        "totals earn more trust than cluster outputs, whose 2015 split is an assumption.",
        "基准情景（当前校准）与未参与拟合的2015-2025年公开实际数据之间的偏差，按指标汇总，"
        "与 `ningbo-sd check` 一致。全市总量比各产业集群规模更可信（集群的2015年结构是假设）。",
    ),
    "track_summary": (
        "{figures} published figures compared, {levels} of them levels: mean absolute "
        "error on levels {mape}%.",
        "共比较{figures}个公开数据，其中{levels}个为水平值：水平值平均绝对百分比误差{mape}%。",
    ),
    "col_indicator": ("Indicator", "指标"),
    "col_figures": ("Figures (levels)", "数据个数（水平值）"),
    "col_mape": ("Error on levels (MAPE)", "水平值误差（MAPE）"),
    "col_growth_error": ("Error on growth rates", "增速误差"),
    "col_in_predictive_band": ("Inside the 90% band", "落在90%区间内"),
    # messages
    "error_prefix": (
        "Not applied, the last good settings are kept: ",
        "未应用，保留上一次有效设置：",
    ),
    "saved": ("Saved {path}", "已保存 {path}"),
    "loaded": ("Loaded scenario {name}", "已加载情景 {name}"),
}

TEXTS = MappingProxyType(
    {key: dict(zip(LANGUAGES, pair, strict=True)) for key, pair in _TEXTS.items()}
)

CLUSTER_LABELS = MappingProxyType(
    {
        "petrochem": {"en": "Green petrochemicals", "zh": "绿色石化"},
        "auto": {"en": "Automobiles", "zh": "汽车"},
        "equipment": {"en": "High-end equipment", "zh": "高端装备"},
        "new_materials": {"en": "New materials", "zh": "新材料"},
        "electronics": {"en": "Electronic information", "zh": "电子信息"},
        "software": {"en": "Software and emerging services", "zh": "软件与新兴服务"},
        "basic_parts": {"en": "Key basic components", "zh": "关键基础件"},
        "appliances": {"en": "Smart appliances", "zh": "智能家电"},
        "textiles": {"en": "Fashion textiles and apparel", "zh": "时尚纺织服装"},
        "biomedicine": {"en": "Biomedicine", "zh": "生物医药"},
        "stationery_sports": {"en": "Stationery and sporting goods", "zh": "文体用品"},
        "green_tech": {"en": "Energy saving and environmental protection", "zh": "节能环保"},
        "other": {"en": "Other manufacturing", "zh": "其他制造业"},
    }
)


_UNIT_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (
        ("万元/人·年", "10k yuan/person-year"),
        ("件/百亿元", "patents per 10 bn yuan"),
        ("万元/亩", "10k yuan/mu"),
        ("亿元/家", "100 million yuan per firm"),
        ("元/百元", "yuan per 100 yuan"),
        ("平方公里", "km²"),
        ("百亿元", "10 bn yuan"),
        ("亿元", "100 million yuan"),
        ("万元", "10k yuan"),
        ("家", "firms"),
        ("件", "patents"),
        ("个", "count"),
        ("亩", "mu"),
    ),
    "zh": (
        ("capital / land / energy", "资本／土地／能源"),
        ("index (2015 = 1)", "指数（2015年=1）"),
        ("% of gross output", "%（占工业总产值）"),
        ("% of value added", "%（占增加值）"),
        ("% of revenue", "%（占营业收入）"),
        ("% of output", "%（占产值）"),
        ("patents per ", "件/"),
        (" revenue", "营业收入"),
        ("person-year", "人·年"),
        (" (2020 prices)", "（2020年价）"),
        (" (nominal)", "（现价）"),
        ("(2020 prices)", "（2020年价）"),
        ("(nominal)", "（现价）"),
        ("/year", "/年"),
        ("10k tce", "万吨标准煤"),
        ("tce", "吨标准煤"),
        ("km²", "平方公里"),
        ("firms", "家"),
        ("patents", "件"),
        ("index", "指数"),
    ),
}


def display_unit(unit: str, language: str) -> str:
    """A unit written for ``language`` (the data files mix 亿元 and English unit words)."""
    text = str(unit or "")
    for word, replacement in _UNIT_WORDS[check_language(language)]:
        text = text.replace(word, replacement)
    return text


def check_language(language: str) -> str:
    """Return ``language`` if it is supported, else raise a clear ValueError."""
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    return language


def tr(key: str, language: str, **fields) -> str:
    """Return the app text ``key`` in ``language``, formatted with ``fields``.

    Parameters
    ----------
    key : str
        A key of :data:`TEXTS`.
    language : {"en", "zh"}
    **fields
        Values for ``{placeholders}`` in the text.

    Returns
    -------
    str
    """
    if key not in TEXTS:
        raise KeyError(f"app text {key!r} is not defined in scenarios/app_text.py")
    text = TEXTS[key][check_language(language)]
    return text.format(**fields) if fields else text


def cluster_label(cluster: str, language: str) -> str:
    """Name of a cluster in ``language`` (the id itself for an unknown cluster)."""
    return CLUSTER_LABELS.get(cluster, {}).get(check_language(language), cluster)


def pick(labels: dict, language: str) -> str:
    """Choose ``labels[language]`` from an ``{"en": ..., "zh": ...}`` mapping, else English."""
    return str(labels.get(check_language(language)) or labels.get("en") or "")


def html_text(value, limit: int | None = None) -> str:
    """``value`` as HTML text: safe in an element's content and in a quoted attribute.

    Parameters
    ----------
    value : object
        Any text (``str(value)`` is used): ``&``, ``<``, ``>``, ``"`` and ``'`` are
        written as entities, so no tag, attribute or script can come out of it.
    limit : int, optional
        Cut to a one-line excerpt of at most this many characters first (for messages
        quoting what a user gave: never the whole of a long value).

    Returns
    -------
    str
    """
    text = str(value) if limit is None else excerpt(value, limit)
    return html.escape(text, quote=True)


def markdown_text(value, limit: int = MESSAGE_CHARS) -> str:
    """``value`` as literal text in a Markdown pane: one bounded line, no markup.

    Panel's Markdown renderer passes raw HTML through, so a ``<img onerror=...>`` in a
    message would run; and ``[text](url)``, ``*`` or ``#`` would be links and formatting.
    HTML's special characters become entities and Markdown's punctuation is escaped with a
    backslash, so the pane shows exactly the characters of ``value``.

    Parameters
    ----------
    value : object
        Any text (``str(value)`` is used).
    limit : int
        The most characters kept (a one-line excerpt, ending in "…" when cut).

    Returns
    -------
    str
    """
    return html.escape(_MARKDOWN_PUNCTUATION.sub(r"\\\1", excerpt(value, limit)), quote=True)
