"""The classical methods, declared once (read by the registry through regkit's entry points)."""

from regkit.registrar import MethodDeclaration

METHODS = (
    MethodDeclaration("mi", "regkit.baselines.mi:MIRegistrar", title="Mutual Information", kind="classical",
                      summary="Mattes mutual information, rigid Euler (itk-elastix)"),
    MethodDeclaration("mind", "regkit.baselines.mind:MINDRegistrar", title="SSD MIND", kind="classical",
                      summary="SSD of MIND-SSC descriptors, rigid Euler, 12 metrics (itk-elastix)"),
)
