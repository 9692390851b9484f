"""Pins the entrypoint contract on both sides and the results schema.

The host writes the job (runner/launch/job.py), the container reads it
(edgeasr_entrypoint/job.py): they must agree. Every Dockerfile must keep its base
an ARG, install the shared entrypoint and carry the contract labels.
"""

import re

import edgeasr_entrypoint
import pytest
from edgeasr_entrypoint.contract import ALL_EVENTS, CONTRACT_VERSION, Event
from edgeasr_entrypoint.job import parse_job

from runner.launch import job as host_job
from runner.launch.backends import BACKENDS, CONTAINERS_DIR, RUNNER_IMAGE
from runner.launch.images import build_args, parse_versions_label, versions_label
from runner.results import SCHEMA_VERSION, Summary
from runner.spec import DecodeSettings, Settings, build_run_spec

REQUIRED_SUMMARY_KEYS = {
    "backend", "model", "quant", "device", "dataset", "n_utterances", "n_failed", "audio_s", "wer", "cer",
    "sub", "del", "ins", "rtf", "rtfx", "latency_ms", "load_s", "peak_rss_mb", "image", "versions", "status",
    "error", "schema_version", "unavailable",
    # schema 2 (issue 9): each memory figure under a name that says what it includes
    "peak_rss_scope", "audio_cache_mb", "peak_rss_excl_audio_mb", "peak_vram_torch_mb", "peak_vram_nvml_mb",
}


def test_contract_versions_agree():
    assert host_job.CONTRACT_VERSION == edgeasr_entrypoint.CONTRACT_VERSION


def test_host_job_is_read_back_by_the_container_side(tmp_path, root):
    models = tmp_path / "models" / "tiny.en"
    models.mkdir(parents=True)
    (models / "model.bin").write_bytes(b"x")
    (models / "config.json").write_text("{}")
    spec = build_run_spec(Settings(model="tiny.en", quant="int8", dataset=str(root / "data" / "default"),
                                   decode=DecodeSettings(language="en", threads=2)),
                          out=str(tmp_path / "o"), models_dir=tmp_path / "models")
    job = parse_job(host_job.make_job(spec))
    assert job.model == "/models/tiny.en" and job.backend_quant == "int8" and job.device == "cpu"
    assert job.decode.language == "en" and job.decode.threads == 2 and job.decode.temperature == 0.0
    assert len(job.utterances) == 21 and all(u.audio.startswith("/data/") for u in job.utterances)
    mounts = {m.target: m for m in host_job.make_mounts(spec, tmp_path / "o" / "raw")}
    # each of the 21 embedded audio files alone, read-only, at the path the job names (not their folder, which
    # holds the references too); nothing else of the host but the model (read-only) and the raw folder (writable)
    audio = {u.audio for u in job.utterances}
    assert set(mounts) == audio | {"/models/tiny.en", "/out"}
    assert {mounts[a].source for a in audio} == {u.audio for u in spec.dataset.utterances}
    assert all(mounts[a].read_only for a in audio)
    assert mounts["/models/tiny.en"].read_only and not mounts["/out"].read_only
    env = host_job.make_env(spec)
    assert env["HF_HUB_OFFLINE"] == "1" and env["HOME"] == "/tmp" and env["XDG_CACHE_HOME"].startswith("/tmp")


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_dockerfile_rules(name):
    backend = BACKENDS[name]
    text = backend.dockerfile.read_text()
    assert re.search(r"^ARG BASE_IMAGE(=\S+)?$", text, re.M), "base must be an ARG"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.M)
    assert "COPY common/edgeasr_entrypoint" in text
    assert 'org.edgeasr.contract="${EDGEASR_CONTRACT}"' in text and re.search(r"^ARG EDGEASR_CONTRACT$", text, re.M)
    assert f'org.edgeasr.backend="{name}"' in text
    assert re.search(r'^ENTRYPOINT \[.*"-m", "edgeasr_entrypoint"\]', text, re.M)
    assert 'org.edgeasr.versions="${EDGEASR_VERSIONS}"' in text and "ARG EDGEASR_VERSIONS" in text
    versions = parse_versions_label(versions_label(backend))
    assert versions and all(versions.values())


def test_contract_doc_names_every_event_and_output():
    """containers/README.md documents every event the contract names, the outputs and the contract version."""
    doc = (CONTAINERS_DIR / "README.md").read_text()
    assert {"load_start", "load_end", "utterance_start", "utterance_end"} <= set(ALL_EVENTS)
    for name in set(ALL_EVENTS) | {"events.jsonl", "transcripts.jsonl", "status.json", "job.json"}:
        assert f"`{name}`" in doc, f"containers/README.md does not document {name}"
    assert f"version {CONTRACT_VERSION}" in doc, "containers/README.md names an older contract version"


def test_the_entrypoint_emits_only_contract_events():
    """Every event the entrypoint emits is named through contract.Event, never as a bare string."""
    source = (CONTAINERS_DIR / "common" / "edgeasr_entrypoint" / "__main__.py").read_text()
    assert not re.findall(r'emit\(\s*["\']', source), "an event emitted by a bare string"
    used = set(re.findall(r"emit\(\s*Event\.([A-Z_]+)", source))
    assert used == {k for k in vars(Event) if k.isupper()}, "an Event constant the entrypoint never emits"


def test_backend_images_are_built_with_the_contract_version():
    """`edgeasr images build` passes EDGEASR_CONTRACT (the org.edgeasr.contract label) to backend images only."""
    backend = BACKENDS["faster-whisper"]
    args = build_args(backend, wheels_url="", versions="x=1", base="b:1")
    assert args == {"WHEELS_URL": "", "EDGEASR_VERSIONS": "x=1", "EDGEASR_CONTRACT": str(CONTRACT_VERSION),
                    "BASE_IMAGE": "b:1"}
    assert "EDGEASR_CONTRACT" not in build_args(RUNNER_IMAGE, wheels_url="", versions="", base=None)


def test_summary_schema_is_pinned():
    s = Summary(backend="b", model="m", quant="q", device="cpu", dataset="d", status="ok")
    data = s.to_json()
    assert REQUIRED_SUMMARY_KEYS <= set(data)
    assert data["schema_version"] == SCHEMA_VERSION == 3
    assert "deletions" not in data  # on disk the field is "del"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_has_a_dockerfile_per_platform(name):
    """`make images PLATFORM=x86|cuda|jetson-r35|jetson-r36` finds each backend's variant and tags it per platform."""
    from runner.launch.images import platform_tag
    from runner.platforms import PLATFORMS

    assert {"x86", "cuda", "jetson-r35", "jetson-r36"} <= set(PLATFORMS)
    be = BACKENDS[name]
    for platform, p in PLATFORMS.items():
        if platform not in be.platforms:  # the table says why there is none
            assert be.no_variant and be.platform_problem(platform).startswith(f"backend {name} has no {platform}")
            assert not (CONTAINERS_DIR / be.build_dir / p.dockerfile).exists()
            continue
        assert (CONTAINERS_DIR / be.build_dir / p.dockerfile).is_file()
        assert platform_tag(be, platform) == f"edgeasr/{name}:{p.tag}"


def test_contract_module_imports_only_the_standard_library():
    """contract.py is shared by the host and every image (Python 3.8 included): it imports nothing else,
    not even its own package's modules (which need numpy)."""
    import ast
    import sys

    path = CONTAINERS_DIR / "common" / "edgeasr_entrypoint" / "contract.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import from {node.module!r}"
            imported.add(node.module.split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_contract_names_every_event_once_and_the_windows_use_them():
    from edgeasr_entrypoint import contract

    assert len(set(contract.ALL_EVENTS)) == len(contract.ALL_EVENTS)
    pairs = [*contract.WINDOWS.values(), contract.PREPARE_WINDOW, contract.UTTERANCE_WINDOW,
             contract.CONDITION_WINDOW]
    assert {name for pair in pairs for name in pair} <= set(contract.ALL_EVENTS)
    assert contract.CONTAINER_WIDE_EVENTS <= set(contract.ALL_EVENTS)
    assert set(contract.IN_CONTAINER_DECODE) <= set(contract.DecodeOptions.__dataclass_fields__)
