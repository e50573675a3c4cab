"""Training the deep registrars: fresh starts every step, a fixed validation set, resumable, DDP-ready.

The recipe follows the paper (§2.3, §3.1) and the authors' code:

* every sample is a (case, start) pair with a start drawn fresh by the paper's generator
  (:mod:`regkit.starts`), its target SRE uniform in the stage's range (stage 1: 0–20 mm, stage 2: 0–8 mm);
  an epoch draws one start for every training case; the training volumes are rendered once and only the
  TRUS is resampled per sample (batched ``grid_sample``);
* the validation set is fixed: 5 starts per validation case, saved with the run (``val_starts.csv``);
* loss: MSE on the six parameters; optimiser: Adam. Schedules per network: Attention-Reg/Feature-Reg lr 1e-3,
  ×0.3 at 40 %, 57 % and 83 % of the epochs (the paper's 120/170/250 of 300); MSReg 5e-5 and DVNet 1e-3, ×0.9
  every 5 epochs;
* the best checkpoint is kept by validation SRE (``best.*``), the last one for resuming (``last.*``, with the
  optimiser, scheduler and random-stream positions);
* on the CPU, bf16 autocast is used where the processor supports it, and the fused attention always;
* ``data`` may name several datasets (``"builtin"`` is the built-in benchmark): their training splits are
  pooled, and their validation splits are pooled too, each dataset's validation SRE logged as its own column
  (``val_sre_<dataset>``), the best checkpoint chosen on the mean over all validation starts. Training cases are
  held compactly (the fixed crop and an 8-bit TRUS), so hundreds fit in memory;
* ``augment`` varies the network inputs' intensities on the fly (gamma, smooth bias, noise; per sample and
  channel, the label channel excepted), on top of what the randomised data (``regkit synth --randomise``) vary;
* ``rollout`` (a fraction) trains on the starts a network leaves behind, not only on fresh ones
  (:mod:`~regkit.deep.training.rollout`).

Run under ``torchrun --nproc_per_node N`` and the same code trains with DistributedDataParallel (NCCL on GPUs,
gloo on CPUs); every rank validates (so all agree on the best epoch) and rank 0 writes.

``--time-budget`` limits each invocation: a resumed run gets the budget again. SIGTERM and Ctrl-C stop cleanly
with ``last.*`` saved (a stop in mid-epoch validates that partial epoch, and resuming continues from the next
step).

The package: :mod:`~regkit.deep.training.options` (what ``regkit train`` takes, checked before any work),
:mod:`~regkit.deep.training.data` (the cases as network inputs, validation starts, epoch order, augmentation),
:mod:`~regkit.deep.training.rollout`, :mod:`~regkit.deep.training.trainer` (the loop),
:mod:`~regkit.deep.training.state` (what ``last.*`` holds for a resume) and :mod:`~regkit.deep.training.budget`
(the time budget).
"""

from regkit.deep.training.data import augment_inputs, epoch_order, load_training_data, validation_groups
from regkit.deep.training.options import TrainOptions, check_train_options, trainable_declaration, trainable_methods
from regkit.deep.training.trainer import Trainer, train

__all__ = [
    "TrainOptions",
    "Trainer",
    "augment_inputs",
    "check_train_options",
    "epoch_order",
    "load_training_data",
    "train",
    "trainable_declaration",
    "trainable_methods",
    "validation_groups",
]
