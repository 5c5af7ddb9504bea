"""Every option is declared once and takes its default from the config the command builds."""

import inspect

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nst_ort import contract, layerspec
from nst_ort.bundle import write
from nst_ort.cli import app
from nst_ort.cli.options import FIELDS, flag
from nst_ort.config import LossSpec, StylizeConfig, parse_init
from nst_ort.contract import ExportSpec
from nst_ort.studies import grid, reconstruct
from nst_ort.studies.grid import AxisKind
from nst_ort.video import config as video_config

PRESETS = {
    ("stylize",): StylizeConfig(),
    ("reconstruct", "content"): reconstruct.DEFAULTS,
    ("reconstruct", "style"): reconstruct.DEFAULTS,
    ("sweep",): grid.DEFAULTS,
    ("batch",): StylizeConfig(),  # a batch is many stylize runs
    ("bundle",): write.DEFAULTS,
    ("video",): video_config.DEFAULTS.stylize,  # the video fields: tests/cli/test_video.py
}


def commands(group: typer.Typer = app, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every command of the app: its words on the command line -> its function."""
    found = {prefix + (info.name,): info.callback for info in group.registered_commands}
    for sub in group.registered_groups:
        found.update(commands(sub.typer_instance, prefix + (sub.name,)))
    return found


def defaults(function) -> dict[str, object]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize("words", list(PRESETS), ids=" ".join)
def test_option_defaults_are_the_configs(words):
    actual = defaults(commands()[words])
    desired = PRESETS[words]
    checked = 0
    for name, value in actual.items():
        if name == "init":
            assert parse_init(value) == desired.init, name
        elif value is None and name in {kind.value for kind in AxisKind}:
            continue  # a sweep axis not given: the base config's value, as its help says
        elif name == "style_layers" and value is None:
            continue  # None: the config's, as test_style_layers_left_out_mean_the_configs checks
        elif name in ("content_layers", "style_layers"):
            available = contract.loss_layers(contract.Arch.VGG16)
            assert layerspec.weighted_layers(value, available, "") == getattr(desired.loss, name), name
        elif name in ("layer", "layers"):  # reconstructions: the default loss's layers
            layers = desired.loss.content_layers if name == "layer" else desired.loss.style_layers
            assert layerspec.layer_list(value, contract.loss_layers(contract.Arch.VGG16), "") == list(layers)
        elif hasattr(desired.loss, name):
            assert value == getattr(desired.loss, name), name
        elif hasattr(desired, name) and name != "model":
            assert value == getattr(desired, name), name
        else:
            continue
        checked += 1
    assert checked >= 5  # the comparison found the command's config options


def test_export_defaults_are_the_export_specs():
    actual = defaults(commands()[("export",)])
    desired = ExportSpec()
    assert (actual["arch"], actual["pooling"]) == (desired.arch, desired.pooling)
    available = contract.loss_layers(desired.arch)
    assert tuple(layerspec.layer_list(actual["content_layers"], available, "")) == desired.content_layers
    assert tuple(layerspec.layer_list(actual["style_layers"], available, "")) == desired.style_layers


def test_style_layers_left_out_mean_the_configs():
    from nst_ort.cli.options import loss_from_options
    from nst_ort.model import ModelInfo

    layers = tuple(contract.loss_layers(contract.Arch.VGG16))
    info = ModelInfo(*[None] * 8, layers, layers, *[None] * 4)
    desired = LossSpec()
    content_layers = layerspec.format_layers(desired.content_layers)
    actual = loss_from_options(
        info,
        content_layers,
        None,
        desired.content_weight,
        desired.style_weight,
        desired.tv_weight,
        desired.normalize,
        desired.style_loss,
        desired.tv_chroma,
    )
    assert actual == desired


def test_every_config_option_is_named_after_its_field():
    """as_options shows a field as flag(field): true only while each option is named so."""
    for words, function in commands().items():
        for name, parameter in inspect.signature(function).parameters.items():
            if name not in FIELDS:
                continue
            declared = []
            for meta in getattr(parameter.annotation, "__metadata__", ()):
                # With Annotated, Typer keeps a first positional name in `default`.
                first = getattr(meta, "default", None)
                declared += [first] if isinstance(first, str) and first.startswith("-") else []
                declared += list(getattr(meta, "param_decls", None) or ())
            assert not declared or flag(name) in declared, (words, name, declared)


def _help(cli, monkeypatch, *words) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    result = cli(*words, "--help")
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_help_explains_the_options(cli, monkeypatch):
    actual = _help(cli, monkeypatch, "stylize")
    for option in (
        "--style-weight",
        "--content-layers",
        "--style-scale",
        "--save-every",
        "--report",
        "--device",
    ):
        assert option in actual
    assert "Stylise CONTENT with STYLES" in actual
    desired = f"[default: {StylizeConfig().size}]", f"[default: {StylizeConfig().loss.style_weight}]"
    assert all(text in actual for text in desired)  # StylizeConfig's size and β, as Typer shows them


@pytest.mark.parametrize("command", ["stylize", "bundle"])
def test_help_shows_defaults_written_in_words(cli, monkeypatch, command):
    # Rich would read "[default: …]" in a help text as markup and drop it.
    actual = _help(cli, monkeypatch, command)
    assert "(default: the user cache's default model)" in actual
    desired = layerspec.format_layers(LossSpec().style_layers)
    assert f"{desired})." in actual and desired.startswith("relu1_1:0.3,")


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LAYERS = contract.loss_layers(contract.Arch.VGG16)
layer_spec = st.one_of(
    st.text(max_size=30),
    st.lists(
        st.tuples(
            st.sampled_from([*LAYERS, "relu9_9", "", "conv1_1"]),
            st.one_of(st.none(), st.text(max_size=5), st.floats(allow_nan=True).map(str)),
        ),
        max_size=4,
    ).map(lambda items: ",".join(k if w is None else f"{k}:{w}" for k, w in items)),
)
number = st.one_of(
    st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-5, 10**6).map(str),
)


@FUZZ
@given(
    style_layers=layer_spec,
    content_layers=layer_spec,
    size=number,
    style_weight=number,
    blend=st.text(max_size=12),
    init=st.sampled_from(["noise", "content", "style", "nope", "", "/"]),
)
def test_cli_option_parsing(
    cli, tiny_model, tmp_path, style_layers, content_layers, size, style_weight, blend, init
):
    # The content file does not exist: whatever the options, no optimisation starts.
    result = cli(
        "stylize", tmp_path / "missing.png", tmp_path / "style.png", "-o", tmp_path / "o.png",
        "--model", tiny_model, "--style-layers", style_layers, "--content-layers", content_layers,
        "--size", size, "--style-weight", style_weight, "--style-blend", blend, "--init", init,
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr  # a usage error or a clean one-line error, not a crash
    if result.stderr.startswith("error: "):
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()
