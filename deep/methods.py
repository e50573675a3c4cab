"""The networks and the deep methods, each declared once (imports no torch: the registry reads this).

A deep method is a network (an :class:`Architecture`) with a fixed-input variant: the MR image or the MR
prostate label as the fixed channel. Adding a network means one module that builds it and one
:class:`Architecture` plus one :class:`~regkit.registrar.MethodDeclaration` (see :func:`deep_method` and the
README's worked example).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regkit.registrar import Capabilities, MethodDeclaration, Variant

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEEP_CAPABILITIES = Capabilities(batched=True, needs_fixed_label=True, uses_device=True)


@dataclass(frozen=True)
class Architecture:
    """A network and the paper's recipe for it.

    Attributes
    ----------
    name : str
        Stored in checkpoints. A plug-in network is named ``"module:attribute"`` of this object, so that its
        checkpoints find it in any process.
    title : str
    builder : str or callable
        Returns the ``nn.Module`` (it may take ``attention="fused"|"explicit"``): ``"module:function"``, or the
        callable itself.
    paper_parameters : int
        The parameter count the paper reports (0 if none).
    lr : float
    schedule : str
        ``"multistep"``: ×0.3 at 40 %, 57 % and 83 % of the epochs (the paper's 120/170/250 of 300);
        ``"step5"``: ×0.9 every 5 epochs.
    batch_size : int
    """

    name: str
    title: str
    builder: str | Callable[..., Any]
    paper_parameters: int = 0
    lr: float = 1e-3
    schedule: str = "multistep"
    batch_size: int = 8


ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture("attention_reg", "Attention-Reg", "regkit.deep.attention_reg:attention_reg", 1_248_777),
        Architecture("feature_reg", "Feature-Reg", "regkit.deep.attention_reg:feature_reg", 1_244_393),
        # the paper trained MSReg at batch 16 on a GPU server; 16 does not fit a 24 GB CPU machine, 4 does
        Architecture("msreg", "MSReg", "regkit.deep.msreg:msreg", 16_106_076, 5e-5, "step5", 4),
        Architecture("dvnet", "DVNet", "regkit.deep.dvnet:dvnet", 5_275_832, 1e-3, "step5", 16),
    )
}


def deep_method(name: str, title: str, architecture: str | Architecture, variant: Variant = "image", summary: str = "",
                stages: int = 2, weights_dir: str | Path = WEIGHTS_DIR, claims: tuple[str, ...] = ()
                ) -> MethodDeclaration:
    """The declaration of a network with a fixed-input variant.

    Parameters
    ----------
    name : str
        Registry name (``regkit compare --methods NAME``, ``regkit train --method NAME``).
    title : str
        Row title in the tables.
    architecture : str or Architecture
        A built-in architecture's name, or the :class:`Architecture` itself (a plug-in's).
    variant : {"image", "label"}
        The fixed input: the MR image or the MR prostate label.
    summary : str
        One line for ``regkit list``.
    stages : int
        Stages of the cascade (1 or 2).
    weights_dir : path
        Where the bundled weights lie: ``weights_dir/<name>-stage<k>`` for k = 1..stages (stages without a
        file are skipped).
    claims : tuple of str
        The arms the paper claims it beats (see :class:`~regkit.registrar.MethodDeclaration`).

    Returns
    -------
    MethodDeclaration
    """
    weights = tuple(str(Path(weights_dir) / f"{name}-stage{k}") for k in range(1, stages + 1))
    return MethodDeclaration(
        name, "regkit.deep.registrar:DeepRegistrar", title=title, kind="deep", summary=summary,
        capabilities=DEEP_CAPABILITIES, architecture=architecture, variant=variant, weights=weights, claims=claims,
        options={"name": name, "architecture": architecture, "variant": variant, "weights": weights})


# The paper's claims (Song et al. 2021): Attention-Reg against the baselines, attention against no attention
# (Feature-Reg), label against image input, and the second stage against the first.
METHODS = (
    deep_method("attreg", "Attention-Reg (image)", "attention_reg", "image",
                "Attention-Reg (image), two-stage cascade",
                claims=("mi", "mind", "msreg", "dvnet", "featreg", "attreg@1")),
    deep_method("attreg-label", "Attention-Reg (label)", "attention_reg", "label",
                "Attention-Reg (label), two-stage cascade", claims=("featreg-label", "attreg", "attreg-label@1")),
    deep_method("featreg", "Feature-Reg (image)", "feature_reg", "image",
                "Feature-Reg (image): Attention-Reg without attention"),
    deep_method("featreg-label", "Feature-Reg (label)", "feature_reg", "label",
                "Feature-Reg (label): Attention-Reg without attention"),
    deep_method("msreg", "MSReg", "msreg", "image", "MSReg: 3-D ResNeXt, cardinality 16"),
    deep_method("dvnet", "DVNet", "dvnet", "image", "DVNet-style 2-D CNN over slices (regkit's design)"),
)
