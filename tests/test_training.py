"""Training: the loss goes down, resuming is exact, checkpoints reload, DDP replicas agree, bad input errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from regkit.dataset import write_manifest
from regkit.deep.checkpoint import load_checkpoint, read_config, read_tensors
from regkit.deep.training import Trainer, TrainOptions, load_training_data, train
from regkit.errors import CheckpointError, InputError

torch.set_num_threads(2)


def options(ds, out, **kw):
    base = dict(method="dvnet", out=out, data=ds.root, batch_size=2, samples_per_epoch=4, bf16=False,
                show_progress=False, seed=3)
    return TrainOptions(**{**base, **kw})


def test_the_api_refuses_a_missing_dataset_folder_before_any_work(phantom_dataset, tmp_path):
    with pytest.raises(InputError, match="gone: the dataset folder does not exist") as info:
        train(options(phantom_dataset, tmp_path / "out", data=[phantom_dataset.root, tmp_path / "gone"]))
    assert str(tmp_path / "gone") in str(info.value)
    assert not (tmp_path / "out").exists()


def test_training_steps_lower_the_loss_and_a_short_run_keeps_its_record(phantom_dataset, tmp_path):
    # what learning needs: the trainer's own step (loss, backward, optimizer) lowers the loss of the batch it
    # trains on (DVNet, 3 steps on one batch of 2 fresh starts: to about 0.1 of it here)
    opts = options(phantom_dataset, tmp_path / "run", epochs=1)
    trainer = Trainer(opts)
    _, train_inputs, _ = load_training_data(opts.resolved(), "image", "cpu")
    x, y = trainer._batch(train_inputs, np.random.default_rng(0))

    def loss():
        with torch.no_grad():
            return float(F.mse_loss(trainer.model.train()(x), y))

    before = loss()
    for _ in range(3):
        trainer.train_step(x, y)
    assert loss() < 0.5 * before, (before, loss())
    # and the loop around it: one epoch of 2 steps, validated before and after, the best and the starts kept
    summary = trainer.run()
    assert summary["steps"] == 2 and np.isfinite(summary["val_sre_last"])
    hist = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert hist[0].startswith("epoch,step") and len(hist) == 1 + 1 + 1  # the start, then the epoch
    assert (tmp_path / "run" / "best.safetensors").exists() and (tmp_path / "run" / "val_starts.csv").exists()


@pytest.mark.slow
def test_resume_continues_exactly(phantom_dataset, tmp_path):
    straight = train(options(phantom_dataset, tmp_path / "a", epochs=3))
    first = train(options(phantom_dataset, tmp_path / "b", epochs=3, max_steps=2))
    assert first["stop_reason"] == "max steps" and first["steps"] == 2
    resumed = train(options(phantom_dataset, tmp_path / "b", epochs=3, resume=tmp_path / "b"))
    assert resumed["steps"] == straight["steps"] == 6
    a, b = read_tensors(tmp_path / "a" / "last"), read_tensors(tmp_path / "b" / "last")
    assert a.keys() == b.keys()
    for k in a:
        if k != "_train.torch_rng":
            assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    ca, cb = read_config(tmp_path / "a" / "last"), read_config(tmp_path / "b" / "last")
    assert ca.training["resume"]["scheduler"] == cb.training["resume"]["scheduler"]
    assert ca.training["resume"]["state"]["global_step"] == cb.training["resume"]["state"]["global_step"] == 6
    va = [line.split(",")[4:6] for line in (tmp_path / "a" / "history.csv").read_text().splitlines()]
    vb = [line.split(",")[4:6] for line in (tmp_path / "b" / "history.csv").read_text().splitlines()]
    assert va == vb


@pytest.mark.slow
def test_checkpoint_reload_gives_identical_predictions(phantom_dataset, tmp_path):
    opts = options(phantom_dataset, tmp_path / "run", epochs=1)
    trainer = Trainer(opts)
    trainer.run()
    trainer.save_last()
    model, cfg = load_checkpoint(tmp_path / "run" / "last")
    assert cfg.architecture == "dvnet" and cfg.stage == 1 and cfg.training["samples"] == 4
    x = torch.rand(2, 2, 32, 96, 96)
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(trainer.model(x), model(x))


@pytest.mark.slow
def test_bad_input_gets_clear_errors(phantom_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(phantom_dataset.root, root)
    write_manifest(root, {"train": [], "val": ["case002"]})
    with pytest.raises(InputError, match="the training split is empty"):
        train(options(phantom_dataset, tmp_path / "x", data=root, epochs=1))
    write_manifest(root, {"train": ["case000"], "val": ["case002"]})
    os.remove(root / "case000" / "mr_label.nii.gz")
    with pytest.raises(InputError, match="case000.*mr_label"):
        train(options(phantom_dataset, tmp_path / "x", data=root, epochs=1, method="attreg-label"))
    train(options(phantom_dataset, tmp_path / "d", epochs=1))
    with pytest.raises(CheckpointError, match="is for 'dvnet', not 'msreg'"):
        train(options(phantom_dataset, tmp_path / "m", epochs=1, method="msreg", resume=tmp_path / "d"))
    with pytest.raises(CheckpointError, match="no training state"):
        train(options(phantom_dataset, tmp_path / "e", epochs=1, resume=tmp_path / "d" / "best"))
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        train(options(phantom_dataset, tmp_path / "f", epochs=1, init_weights=tmp_path / "d" / "nothing"))
    # the command line names a checkpoint by its stem too (stage 2 from stage 1's best)
    from click.testing import CliRunner

    from regkit.app.cli import main

    r = CliRunner().invoke(main, ["train", "--method", "dvnet", "--data", str(phantom_dataset.root), "--epochs", "1",
                                  "--batch-size", "2", "--no-bf16", "--stage", "2", "--out", str(tmp_path / "g"),
                                  "--init-weights", str(tmp_path / "d" / "best")], env={"REGKIT_NO_PROGRESS": "1"})
    assert r.exit_code == 0, r.output
    assert read_config(tmp_path / "g" / "best").training["init_weights"] == str(tmp_path / "d" / "best")


@pytest.mark.slow
def test_gloo_ddp_replicas_agree(phantom_dataset, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "regkit.app.cli", "train", "--method", "dvnet", "--data", str(phantom_dataset.root), "--epochs", "2",
           "--batch-size", "1", "--out", str(out), "--no-bf16"]
    env = {**os.environ, "REGKIT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["replica_max_abs_diff"] == 0.0
    assert summary["samples"] == 4  # 2 epochs × 1 step × (batch 1 × 2 processes)


@pytest.mark.slow
def test_msreg_trains_with_the_same_command(phantom_dataset, tmp_path):
    summary = train(options(phantom_dataset, tmp_path / "msreg", method="msreg", epochs=1, batch_size=1,
                            samples_per_epoch=1, val_starts=1))
    assert summary["steps"] == 1 and summary["stop_reason"] == "epochs done"
    cfg = read_config(tmp_path / "msreg" / "best")
    assert cfg.architecture == "msreg" and cfg.training["lr"] == 5e-5 and cfg.training["schedule"] == "step5"


@pytest.mark.slow
def test_a_run_folder_refuses_other_validation_starts(phantom_dataset, tmp_path):
    train(options(phantom_dataset, tmp_path / "r", epochs=1, val_starts=1))
    with pytest.raises(InputError, match="validation starts"):
        train(options(phantom_dataset, tmp_path / "r", epochs=1, val_starts=1, stage=2))


@pytest.mark.slow
def test_pooled_datasets_train_together_and_validate_apart(phantom_dataset, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(phantom_dataset.root, other)
    opts = options(phantom_dataset, tmp_path / "run", data=[phantom_dataset.root, other], epochs=1, augment=True)
    _, train_inputs, val_inputs = load_training_data(opts.resolved(), "image", "cpu")
    assert len(train_inputs) == 4 and {ci.group for ci in val_inputs} == {phantom_dataset.root.name, "other"}
    assert train_inputs[0].case is None and train_inputs[0].moving.volume.dtype == torch.uint8  # compact
    summary = train(opts)
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert {f"val_sre_{phantom_dataset.root.name}", "val_sre_other"} <= set(header)
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and summary["samples"] == 4


def test_augmentation_varies_intensities_but_not_the_label_or_the_background():
    from regkit.deep.training import augment_inputs

    x = torch.rand(3, 2, 8, 12, 12)
    x[:, 1, :, :, :3] = 0.0  # outside the TRUS fan
    x[:, 0] = (x[:, 0] > 0.5).float()  # a label channel
    y = augment_inputs(x, np.random.default_rng(0), fixed_is_label=True)
    assert torch.equal(y[:, 0], x[:, 0]) and torch.all(y[:, 1, :, :, :3] == 0)
    assert not torch.allclose(y[:, 1], x[:, 1]) and y.min() >= 0 and y.max() <= 1
    z = augment_inputs(x, np.random.default_rng(0), fixed_is_label=True)
    assert torch.equal(y, z)  # reproducible from the step's random stream


@pytest.mark.slow
def test_fit_epochs_plans_the_epochs_in_the_time_budget_and_a_resume_keeps_them(phantom_dataset, tmp_path):
    out = tmp_path / "run"
    # the budget leaves room for slow steps on a busy machine (the fit comes after 2 steps); max_steps ends the run
    first = train(options(phantom_dataset, out, epochs=100000, time_budget=60.0, fit_epochs=True, max_steps=5))
    planned = first["epochs_planned"]  # fitted after the first epoch's 2 steps (at this machine's speed)
    assert 1 <= planned < 100000 and first["steps"] <= min(5, 2 * planned)
    assert json.loads((out / "options.json").read_text())["epochs"] == planned
    assert read_config(out / "last").training["resume"]["state"]["fitted_epochs"] == planned
    resumed = train(options(phantom_dataset, out, epochs=100000, time_budget=3.0, fit_epochs=True, resume=out))
    assert resumed["epochs_planned"] == planned and resumed["epochs"] <= planned


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_runs_on_cuda_with_augmentation_and_bf16(phantom_dataset, tmp_path):
    # `--device cuda` (no index), augmentation drawn on the GPU, bf16 autocast; the weights load on the CPU
    summary = train(options(phantom_dataset, tmp_path / "run", device="cuda", augment=True, bf16=True, epochs=2))
    assert summary["steps"] == 4 and np.isfinite(summary["best_val_sre"])
    cfg = read_config(tmp_path / "run" / "best")
    assert cfg.training["device"] == "cuda:0" and cfg.training["device_name"]
    load_checkpoint(tmp_path / "run" / "best", "cpu")



def bundled_stage1(method):
    from regkit.deep.registrar import bundled_checkpoints
    from regkit.registry import available_registrars

    return bundled_checkpoints(available_registrars()[method].weights)[0]


def test_a_fine_tune_of_float16_weights_starts_from_their_float32_upcast_and_saves_float32(phantom_dataset,
                                                                                             tmp_path):
    path = bundled_stage1("dvnet")
    assert read_config(path).dtype == "float16"
    trainer = Trainer(options(phantom_dataset, tmp_path / "run", init_weights=path))
    stored = read_tensors(path)
    for k, v in trainer.model.state_dict().items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.equal(v, stored[k].float()), k
    trainer.save_last()  # a run's own checkpoints stay float32
    assert read_config(tmp_path / "run" / "last").dtype == "float32"
    saved = read_tensors(tmp_path / "run" / "last")
    assert all(saved[k].dtype == torch.float32 for k in stored if stored[k].is_floating_point())


@pytest.mark.slow
def test_rollout_starts_are_where_the_rollout_network_leaves_a_fresh_start(phantom_dataset, tmp_path):
    # a stage 2 (DVNet, cheap) trained on where the bundled Attention-Reg stage 1 lands: the batch's targets are
    # the corrections from that registrar's own results (regkit's inference path: folded batch norms, float32,
    # the full-precision TRUS where training holds an 8-bit one: hundredths apart), far from the fresh start's
    from regkit.deep.correction import correction_target
    from regkit.registry import get_registrar
    from regkit.sre import sre
    from regkit.starts import draw_start, parse_init

    path = bundled_stage1("attreg")
    opts = options(phantom_dataset, tmp_path / "r", stage=2, rollout=1.0, rollout_from=path)
    trainer = Trainer(opts)
    assert trainer._config().training["rollout_from"] == str(path)
    _, train_inputs, _ = load_training_data(opts.resolved(), "image", "cpu")
    _, y = trainer._batch(train_inputs, np.random.default_rng(5))

    stage1 = get_registrar("attreg", stages=1, precision="float32")
    rng, whole = np.random.default_rng(5), parse_init("0-20mm")[0]  # the stage 1's range, not stage 2's 0-8 mm
    for k, ci in enumerate(train_inputs):
        assert rng.random() < 1.0
        start = draw_start(rng, ci.ground_truth, ci.surface_points, whole.draw(rng))
        landed = stage1.register(phantom_dataset.load(ci.case_id), start).transform
        assert sre(landed, ci.ground_truth, ci.surface_points) < sre(start, ci.ground_truth, ci.surface_points)
        np.testing.assert_allclose(y[k].numpy(), correction_target(ci.box, landed, ci.ground_truth), atol=0.1)
        assert np.abs(y[k].numpy() - correction_target(ci.box, start, ci.ground_truth)).max() > 1.0


@pytest.mark.slow
def test_self_rollout_trains_on_the_networks_own_passes_and_bad_rollouts_are_refused(phantom_dataset, tmp_path):
    from regkit.sre import sre

    opts = options(phantom_dataset, tmp_path / "s", stage=2, rollout=1.0, epochs=1)
    trainer = Trainer(opts)
    _, train_inputs, _ = load_training_data(opts.resolved(), "image", "cpu")
    _, fresh = Trainer(options(phantom_dataset, tmp_path / "f", stage=2))._batch(train_inputs,
                                                                                  np.random.default_rng(1))
    landed, roll_out = [], trainer._roll_out

    def recorded(cases, starts, rolled, rng):
        out = roll_out(cases, starts, rolled, rng)
        landed.extend(float(sre(s, c.ground_truth, c.surface_points)) for s, c in zip(out, cases, strict=True))
        return out

    trainer._roll_out = recorded
    _, moved = trainer._batch(train_inputs, np.random.default_rng(1))
    assert len(landed) == 2 and max(landed) <= 8.0  # within the stage's range
    assert not torch.allclose(fresh, moved)  # the starts moved: other targets
    assert train(opts)["samples"] == 4
    with pytest.raises(InputError, match="rollout must be a fraction"):
        train(options(phantom_dataset, tmp_path / "x", rollout=1.5))
    with pytest.raises(InputError, match="rollout is 0"):
        train(options(phantom_dataset, tmp_path / "x", rollout_from=bundled_stage1("attreg")))
    with pytest.raises(InputError, match="is a label network"):
        train(options(phantom_dataset, tmp_path / "x", rollout=0.5, rollout_from=bundled_stage1("attreg-label")))
