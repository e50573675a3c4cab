"""A stalled registration says so; masks only where they are right; resumed runs do not mix settings."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from regkit import RigidTransform, get_registrar, register_registrar
from regkit.baselines.elastix import LevelTrace, convergence, parse_log, still_improving
from regkit.baselines.masks import looks_like_ultrasound, moving_mask_for
from regkit.case import Case
from regkit.errors import InputError
from regkit.evaluation.compare import compare
from regkit.evaluation.store import COLUMNS, ResultStore
from regkit.registrar import NOT_CONVERGED, OK, RegistrarBase

LOG = """Resolution: 0
1:ItNr\t2:Metric\t3a:Time\t3b:StepSize\t4:||Gradient||\tTime[ms]
0\t-0.10\t0.0\t1.0\t0.1\t2.0
1\t-0.20\t0.0\t1.0\t0.1\t2.0
Time spent in resolution 0 (ITK initialization and iterating): 0.1
Stopping condition: Maximum number of iterations has been reached.
Resolution: 1
1:ItNr\t2:Metric\t2:Metric0\t2:Metric1\t3a:Time\t3b:StepSize\t4:||Gradient||\tTime[ms]
0\t3.5\t1.5\t2.0\t0.0\t1.0\t0.1\t2.0
Stopping condition: Maximum number of iterations has been reached.
Final metric value  = 3.5
"""


def test_parse_log_reads_each_level_and_the_total_metric_column():
    levels = parse_log(LOG)
    assert [lv.iterations for lv in levels] == [2, 1]
    np.testing.assert_allclose(levels[0].metric, [-0.1, -0.2])
    assert levels[1].metric[0] == 3.5  # the weighted sum, not a sub-metric
    assert "Maximum number of iterations" in levels[1].stop
    assert levels[0].seconds == 0.1


def test_still_improving_tells_a_falling_trace_from_noise():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, 300)
    assert not still_improving(-0.5 + noise)
    assert still_improving(-0.5 - np.linspace(0, 0.05, 300) + noise)
    assert not still_improving(np.linspace(0, 1, 10))  # too short to judge


def test_convergence_status_and_message():
    flat = [LevelTrace(np.full(100, -0.3) + np.random.default_rng(1).normal(0, 1e-3, 100),
                       "Maximum number of iterations has been reached.")]
    assert convergence(flat, -0.1, -0.3) == (OK, "")
    status, message = convergence(flat, -0.3, -0.2)
    assert status == NOT_CONVERGED and "did not improve" in message
    falling = [LevelTrace(-np.linspace(0, 1, 100), "Maximum number of iterations has been reached.")]
    status, message = convergence(falling, -0.1, -0.9)
    assert status == NOT_CONVERGED and "still falling" in message


def _case(moving: sitk.Image, modality=None) -> Case:
    fixed = sitk.GetImageFromArray(np.random.default_rng(0).uniform(1, 2, (20, 20, 20)).astype(np.float32))
    return Case("c", fixed, moving, None, metadata={"moving_modality": modality} if modality else {})


def _fan_like(pixel) -> sitk.Image:
    a = np.zeros((12, 40, 40))
    yy, xx = np.mgrid[:40, :40]
    a[:, (np.abs(xx - 20) < yy * 0.8) & (yy > 3)] = 100
    a[:, 20:24, 18:22] = 0  # anechoic tissue inside the fan: stays in the mask
    img = sitk.GetImageFromArray(a.astype(np.uint8 if pixel == "u8" else np.uint16))
    return img


def test_the_fan_mask_only_for_ultrasound():
    us8, mr16 = _fan_like("u8"), _fan_like("u16")
    assert looks_like_ultrasound(us8) and not looks_like_ultrasound(mr16)
    mask, note = moving_mask_for(_case(us8), "auto")
    assert mask is not None and "image test" in note
    assert sitk.GetArrayViewFromImage(mask)[6, 21, 20] == 1  # the hole inside the fan is filled
    assert sitk.GetArrayViewFromImage(mask)[6, 2, 2] == 0  # outside the fan
    assert moving_mask_for(_case(mr16), "auto")[0] is None
    assert moving_mask_for(_case(mr16, "US"), "auto")[0] is not None  # the metadata decides
    mask, note = moving_mask_for(_case(us8, "MR"), "auto")
    assert mask is None and "moving_modality=MR" in note
    assert moving_mask_for(_case(mr16), "fan")[0] is not None
    assert moving_mask_for(_case(us8), "none")[0] is None
    with pytest.raises(InputError, match="moving_mask"):
        moving_mask_for(_case(us8), "sometimes")


def test_a_dataset_case_declares_an_ultrasound_moving_image(phantom_dataset):
    assert phantom_dataset.load("case003").metadata["moving_modality"] == "US"


def test_presets_fill_only_the_options_left_at_their_default():
    from regkit.baselines.mi import _DEFAULTS, PRESETS
    from regkit.baselines.recipes import recipe_of

    left = {k: _DEFAULTS[k] for k in ("smoothing_mm", "spatial_samples", "coarse_step", "mask_mm", "moving_mask")}
    r = recipe_of(PRESETS, "phantom", _DEFAULTS, **left, iterations=77)
    assert r == {"smoothing_mm": None, "iterations": 77, "spatial_samples": 2048, "coarse_step": 1.0, "mask_mm": 15.0,
                 "moving_mask": "fan"}
    with pytest.raises(InputError, match="preset"):
        recipe_of(PRESETS, "brain", _DEFAULTS, iterations=1)


@pytest.mark.slow
def test_a_registration_cut_short_is_not_converged(itk_loaded, phantom_case):
    from regkit.starts import make_starts

    start = make_starts([phantom_case], "16mm", 1, seed=4)[0].transform
    res = get_registrar("mi", smoothing_mm=[4.0], iterations=8, spatial_samples=500).register(phantom_case, start)
    assert res.status == NOT_CONVERGED, res.message
    assert res.message.startswith("not converged:")
    assert res.info["metric_start"] is not None


class _Stalls(RegistrarBase):
    name = "stalls"

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def _register(self, case, initial):
        return initial, {"status": NOT_CONVERGED, "message": "not converged: stalled on purpose"}


register_registrar("stalls", _Stalls)


def test_the_tables_count_not_converged_apart_from_failures(phantom_dataset, tmp_path):
    res = compare(methods="identity,stalls", init="8mm", data=phantom_dataset.root, split="train",
                  starts_per_case=2, out=tmp_path / "c", workers=1, show_progress=False, echo=None)
    summ = res.summary.set_index("method")
    assert summ.loc["stalls", "not_converged"] == 4 and summ.loc["stalls", "failures"] == 0
    assert summ.loc["identity", "not_converged"] == 0
    header, _, *rows = res.tables["table1"].splitlines()
    col = [c.strip() for c in header.split("|")].index("Not converged")
    assert [c.strip() for c in next(r for r in rows if "stalls" in r).split("|")][col] == "4/4"
    samples = res.samples[res.samples["method"] == "stalls"]
    assert (samples["status"] == "not converged").all() and samples["message"].str.contains("on purpose").all()


def test_a_resume_that_would_mix_settings_is_refused(phantom_dataset, tmp_path):
    kw = dict(methods="stalls", init="8mm", data=phantom_dataset.root, split="train", starts_per_case=1,
              out=tmp_path / "c", workers=1, show_progress=False, echo=None)
    compare(**kw)
    record = json.loads((tmp_path / "c" / "run.json").read_text())
    assert record["methods"][0]["settings"]["scale"] == 1.0
    compare(**kw)  # the same settings resume
    record["methods"][0]["settings"]["scale"] = 2.0  # as if the registrar's default had changed since
    (tmp_path / "c" / "run.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="defaults changed"):
        compare(**kw)


def test_a_results_file_from_an_older_regkit_gains_the_stages_column(tmp_path):
    path = tmp_path / "results.csv"
    old = [c for c in COLUMNS if c != "stages"]
    path.write_text(",".join(old) + "\n")
    store = ResultStore(path)
    store.append({"method": "m", "case": "c", "start_id": 0, "init": "8mm", "final_sre": 1.0, "status": "ok",
                  "stages": "[]"})
    frame = store.read()
    assert list(frame.columns) == [*old, "stages"] and frame.loc[0, "final_sre"] == 1.0
    assert frame.loc[0, "stages"] == "[]"


def test_a_stalled_result_is_not_ok():
    case = _case(_fan_like("u16"))
    res = get_registrar("stalls").register(case, RigidTransform.identity())
    assert res.status == NOT_CONVERGED and not res.ok and res.transform.allclose(RigidTransform.identity())


def test_per_level_iteration_counts():
    from regkit.baselines.recipes import per_level_iterations

    default = (100, 150)
    assert per_level_iterations((100, 150), 3, default) == (100, 100, 150)  # the default follows the levels
    assert per_level_iterations((100, 150), 1, default) == (150,)
    assert per_level_iterations(40, 3, default) == (40, 40, 40)
    assert per_level_iterations([40], 2, default) == (40, 40)  # a one-element list is one count for all
    assert per_level_iterations([10, 20, 30], 3, default) == (10, 20, 30)
    with pytest.raises(InputError, match="2 iteration counts for 3 levels"):
        per_level_iterations([10, 20], 3, default)
    with pytest.raises(InputError, match=r"iterations\[1\]"):
        per_level_iterations([10, 0], 2, default)


@pytest.mark.parametrize("method", ["mi", "mind"])
def test_auto_chooses_the_ultrasound_recipe_for_an_ultrasound_moving_image(itk_loaded, method):
    from regkit.baselines.recipes import recipe_for

    reg = get_registrar(method)
    assert reg.preset == "auto" and set(reg.recipes) == {"general", "ultrasound"}
    us8, mr16 = _fan_like("u8"), _fan_like("u16")
    name, recipe, why = recipe_for(reg.recipes, _case(mr16, "US"))
    assert name == "ultrasound" and recipe["moving_mask"] == "fan" and "moving_modality=US" in why
    assert recipe_for(reg.recipes, _case(us8))[0] == "ultrasound"  # the image test, without metadata
    assert recipe_for(reg.recipes, _case(us8, "MR"))[0] == "general"
    assert recipe_for(reg.recipes, _case(mr16))[0] == "general"
    forced = get_registrar(method, preset="general")
    assert recipe_for(forced.recipes, _case(us8, "US"))[0] == "general"
    fine_scales = {"mi": ("smoothing_mm", (1.0, 0.0)), "mind": ("spacing_mm", (1.5,))}[method]
    assert reg.recipes["ultrasound"][fine_scales[0]] == fine_scales[1]  # no coarse level for ultrasound
    assert set(get_registrar(method, preset="phantom").recipes) == {"phantom"}
    # an option given by the caller wins over both recipes
    assert {r["spatial_samples"] for r in get_registrar(method, spatial_samples=777).recipes.values()} == {777}


def test_an_iteration_list_that_fits_one_recipe_only_names_the_recipe_and_the_fix(itk_loaded):
    with pytest.raises(InputError, match="'ultrasound' recipe.*preset='general'"):
        get_registrar("mind", iterations=[60, 150])  # two scales' counts; the ultrasound recipe has one scale
    assert get_registrar("mind", preset="general", iterations=[60, 150]).recipes["general"]["iterations"] == (60, 150)


def test_resolved_settings_include_the_recipes_a_preset_chooses_from():
    from regkit.baselines.mi import PRESETS
    from regkit.registry import resolved_settings

    settings = resolved_settings("mi", {})
    assert settings["preset"] == "auto"
    assert settings["presets"]["ultrasound"]["smoothing_mm"] == list(PRESETS["ultrasound"]["smoothing_mm"])
    assert resolved_settings("identity", {}).get("presets") is None


@pytest.mark.parametrize("method", ["mi", "mind"])
def test_one_registration_asks_once_whether_the_moving_image_is_ultrasound(itk_loaded, phantom_case, method,
                                                                          monkeypatch):
    from regkit.baselines import masks, recipes

    asked = []
    real = masks.moving_is_ultrasound
    monkeypatch.setattr(masks, "moving_is_ultrasound", lambda case: asked.append(case) or real(case))
    hashed = []
    if method == "mind":  # and hashes the fixed image once, not once per scale
        from regkit.baselines.mind import MINDRegistrar

        digest = MINDRegistrar.fixed_digest
        monkeypatch.setattr(MINDRegistrar, "fixed_digest", lambda self, case: hashed.append(1) or digest(self, case))
    case = Case(phantom_case.case_id, phantom_case.fixed, sitk.Cast(phantom_case.moving, sitk.sitkUInt16),
                phantom_case.fixed_label, phantom_case.ground_truth, phantom_case.surface_points, metadata={})
    result = get_registrar(method, iterations=2).register(case, case.ground_truth)
    assert len(asked) == 1
    if method == "mind":
        assert len(result.info["scale_transforms"]) == 2 and len(hashed) == 1
    # a 16-bit moving image with no declared modality: the general recipe, whose mask asks the same question
    assert result.info["recipe"] == "general" and result.info["moving_mask"].startswith("none (image test")
    # the caller's answer is the one both helpers use
    told = (False, "told")
    assert recipes.recipe_for(get_registrar(method).recipes, case, told)[0] == "general"
    assert masks.moving_mask_for(case, "auto", ultrasound=told) == (None, "none (told)")
