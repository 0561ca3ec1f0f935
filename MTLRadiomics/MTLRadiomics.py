"""MTLRadiomics 3D Slicer module.

The module is a thin front end over the MTLRadiomicsLib engine: the engine reads the PET, finds and
segments the tumour, explains the network with Grad-CAM and scores the outcome; the module moves data
between the scene and the engine.
"""

import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)


class MTLRadiomics(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "MTLRadiomics"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = []
        self.parent.contributors = ["MTLRadiomics contributors"]
        self.parent.helpText = (
            "Analyse a 3D FDG-PET volume with a multi-task multi-scale network: metabolic tumour "
            "volume (MTV), Grad-CAM heatmaps per scale, PET metrics and outcome scores. "
            "The bundled model is trained on synthetic phantoms and is not for clinical use.")
        self.parent.acknowledgementText = (
            "Method after Amyar et al., Multi-Task Multi-Scale Learning for Outcome Prediction in 3D "
            "PET Images.")


class MTLRadiomicsWidget(ScriptedLoadableModuleWidget):
    """Module panel."""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        import qt

        label = qt.QLabel(f"MTLRadiomics engine {MTLRadiomicsLogic.engineVersion()}")
        self.layout.addWidget(label)
        self.layout.addStretch(1)


class MTLRadiomicsLogic(ScriptedLoadableModuleLogic):
    """Scene-side logic; no Qt."""

    @staticmethod
    def engineVersion():
        try:
            import MTLRadiomicsLib
        except ImportError:
            return "not installed"
        return MTLRadiomicsLib.__version__


class MTLRadiomicsTest(ScriptedLoadableModuleTest):
    """Self-test run inside Slicer."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_module_loads()

    def test_module_loads(self):
        self.delayDisplay("Checking the MTLRadiomics module")
        self.assertTrue(hasattr(slicer.modules, "mtlradiomics"))
        self.delayDisplay("Test passed")
