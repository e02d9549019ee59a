"""Loop activity: does each feedback loop the README claims change what the model does?

See ``model/loops.yaml`` for the method: a perturbation from outside the loop, run again
with one link of the loop held at its unperturbed path
(:meth:`ningbo_sd.engine.engine.CompiledModel.with_paths`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ningbo_sd.io import UserError, read_yaml_file
from ningbo_sd.model.outputs import reading_time
from ningbo_sd.resources import model_dir
from ningbo_sd.validation import Section

LOOPS_FILE = model_dir() / "loops.yaml"
OUTPUT = "Gross Output"
YEAR = 2035
AT = reading_time(YEAR)  # 2035's output is the flow over 2035, read at mid-year
LOOP_KEYS = {"id", "name", "polarity", "path", "perturbation", "hold", "threshold_pct"}
OPTIONAL_KEYS = {"known_failure"}


def load_loops(path: str | Path | None = None) -> list[dict]:
    """Read and check ``loops.yaml``.

    Raises
    ------
    UserError
        Naming the file, the loop and the field, the value and what is allowed.
    """
    path = Path(path) if path is not None else LOOPS_FILE
    data = read_yaml_file(path)
    loops = data.get("loops") if isinstance(data, dict) else None
    if not isinstance(loops, list) or not loops:
        raise UserError(f"{path}: expected 'loops:', a list of loops")
    for number, loop in enumerate(loops, 1):
        where = f"{path}: loop {number}"
        if not isinstance(loop, dict):
            raise UserError(f"{where}: expected a mapping with {sorted(LOOP_KEYS)}")
        missing = LOOP_KEYS - set(loop)
        unknown = set(loop) - LOOP_KEYS - OPTIONAL_KEYS
        if missing or unknown:
            allowed = sorted(LOOP_KEYS | OPTIONAL_KEYS)
            raise UserError(f"{where} ({loop.get('id')}): missing {sorted(missing)}, "
                            f"unknown {sorted(unknown)}; allowed: {allowed}")  # fmt: skip
        perturbation = loop["perturbation"]
        if not isinstance(perturbation, dict) or not set(perturbation) <= {
            "scenario",
            "parameters",
        }:
            raise UserError(f"{where} ({loop['id']}): perturbation: {perturbation!r}; allowed: "
                            "a mapping with 'scenario' and/or 'parameters'")  # fmt: skip
        threshold = loop["threshold_pct"]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold <= 0:
            raise UserError(f"{where} ({loop['id']}): threshold_pct: {threshold!r}; allowed: "
                            "a positive number")  # fmt: skip
    return loops


def on_a_cycle(name: str) -> bool:
    """Whether the model's structure has a causal path from ``name`` back to itself."""
    from ningbo_sd.model.structure import read_structure

    structure = read_structure()
    readers = [other for other, deps in structure.depends_on.items() if name in deps]
    return any(structure.find_path(reader, name) is not None for reader in readers)


def check_loops(path: str | Path | None = None) -> Section:
    """Measure each claimed loop's activity (gates the build; known failures excepted).

    Returns
    -------
    Section
        One row per loop: the perturbation's effect on 2035 gross output
        (``response_pct``), the part the loop adds (``loop_effect_pct``, the gate's
        figure, with the link held), that part as a share of the response
        (``share_of_response_pct``), the polarity that share shows (``acts``: a passing loop
        must act as claimed), the threshold and the status.
    """
    from ningbo_sd.scenarios.run import compiled_model, resolve_parameters

    model = compiled_model()
    reference = model.run_one(resolve_parameters(), saveper=model.time["time_step"])
    times = reference.index.to_numpy()
    rows = []
    for loop in load_loops(path):
        perturbation = loop["perturbation"]
        params = resolve_parameters(perturbation.get("scenario"), perturbation.get("parameters"))
        hold = loop["hold"]
        columns = [c for c in reference.columns if c == hold or c.startswith(f"{hold}[")]
        if not columns:
            raise UserError(f"{path or LOOPS_FILE}: loop {loop['id']}: hold: no variable {hold!r}")
        held_model = model.with_paths({hold: (times, reference[columns].to_numpy())})
        base = reference[OUTPUT].loc[AT]
        perturbed = model.run_one(params, keep=[OUTPUT])[OUTPUT].loc[AT]
        held = held_model.run_one(params, keep=[OUTPUT])[OUTPUT].loc[AT]
        effect = 100 * (perturbed - held) / perturbed
        # the loop's part of the response, a gain: for a loop that acts linearly it hardly
        # depends on the push (knowledge: 18-20% for investment pushes moving 2035 output
        # 2-12%), while the effect above scales with the push; a loop with a threshold
        # (energy pressure) has no such constant share
        share = 100 * (perturbed - held) / (perturbed - base) if perturbed != base else float("nan")
        # a loop that adds to the response (share > 0) acts reinforcing, one that takes from
        # it balancing, whatever the claim says
        acts = "-" if math.isnan(share) else ("reinforcing" if share > 0 else "balancing")
        cycle = on_a_cycle(hold)  # on a mere chain, holding a link is not a loop test
        active = cycle and abs(effect) > float(loop["threshold_pct"])
        status = "pass" if active else ("known_failure" if loop.get("known_failure") else "fail")
        if active and loop.get("known_failure"):
            status, note = "fail", "active now: remove its known_failure"
        elif active and acts != loop["polarity"]:
            status, note = "fail", f"active, but it acts {acts}: the claim says {loop['polarity']}"
        else:
            note = loop.get("known_failure", "")
            if not cycle:
                note = f"not a loop: no causal path from {hold} back to itself. {note}".strip()
        rows.append(
            {
                "loop": loop["id"],
                "polarity": loop["polarity"],
                "held": hold,
                "response_pct": 100 * (perturbed / base - 1),
                "loop_effect_pct": effect,
                "share_of_response_pct": share,
                "acts": acts,
                "threshold_pct": float(loop["threshold_pct"]),
                "status": status,
                "detail": note or loop["name"]["en"],
            }
        )
    table = pd.DataFrame(rows)
    active = int((table["status"] == "pass").sum())
    summary = (
        f"{active} of {len(table)} claimed loops active (|effect on {YEAR} output| > threshold)"
    )
    return Section("loops", "Loops: activity of each claimed loop", table, summary, gate=True)
