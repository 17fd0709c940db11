"""Each module's ``<Module>Test`` under Slicer's own Python layer, the two ways Slicer runs it: from the module's
"Reload and Test" (``slicer.selfTests[name]``) and as ctest does (``slicer.testing.runUnitTest``)."""

import time

import pytest

from slicer_harness import ROOT

MODULES = ["SSLPretrain", "SSLSegmentation"]


@pytest.mark.parametrize("module", MODULES)
def test_self_test_from_the_module(slicer_runtime, module):
    """As the module panel's Reload-and-Test button calls it (``msec`` from the application settings)."""
    slicer = slicer_runtime
    start = time.monotonic()
    slicer.selfTests[module](msec=int(slicer.app.userSettings().value("Developer/SelfTestDisplayMessageDelay")))
    print(f"{module} self-test: {time.monotonic() - start:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
def test_self_test_as_ctest_runs_it(slicer_runtime, module):
    """As Slicer's ``slicer_add_python_unittest`` ctest runs it: ``runUnitTest([module folder], module)``, which
    raises when a test case fails. The same test cases as above through another runner (26 s for both modules on 2
    cores): slow-marked to keep the default suite within its 15 minutes; that the ctest way reports a failure is
    checked in the default suite by the next test."""
    slicer = slicer_runtime
    import slicer.testing

    slicer.testing.runUnitTest([str(ROOT / module)], module)


def test_a_failing_self_test_fails_run_unit_test(slicer_runtime, monkeypatch):
    """runUnitTest reports a failure (else the ctest way could not fail)."""
    slicer = slicer_runtime
    import slicer.testing

    module = __import__("SSLPretrain")
    monkeypatch.setattr(module.SSLPretrainTest, "test_pretrain_cancel_resume_preview",
                        lambda self: self.fail("broken on purpose"))
    with pytest.raises(Exception):
        slicer.testing.runUnitTest([str(ROOT / "SSLPretrain")], "SSLPretrain")
