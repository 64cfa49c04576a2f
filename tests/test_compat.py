import pytest

from deitlab import compat


@pytest.mark.parametrize(
    ("version", "minor"), [("2.11.0+cu128", "2.11"), ("2.14.1", "2.14"), ("2.15.0.dev20261101+cpu", "2.15")]
)
def test_torch_minor_reads_local_and_dev_versions(version, minor):
    assert compat.torch_minor(version) == minor


@pytest.mark.parametrize("bad", ["", "2", "torch", "x.y.z"])
def test_torch_minor_rejects_what_is_not_a_version(bad):
    with pytest.raises(ValueError, match="not a torch version"):
        compat.torch_minor(bad)


def test_colabs_torch_gets_the_executorch_built_for_it():
    assert compat.tied_requirements("2.11.0+cu128") == ("executorch==1.2.0", "torchao==0.17.*")


def test_an_unknown_torch_gets_no_executorch():
    assert compat.tied_requirements("2.7.1+cu126") == ()


def test_every_row_pins_executorch_and_a_torchao_with_qatconfig_step():
    for minor, pins in compat.TORCH_TIED.items():
        names = {pin.split("==")[0] for pin in pins}
        assert names == {"executorch", "torchao"}, minor
        torchao = next(pin for pin in pins if pin.startswith("torchao=="))
        assert int(torchao.split("==")[1].split(".")[1]) >= 13, f"{minor}: notebook 05 needs torchao >= 0.13"
