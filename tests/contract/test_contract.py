"""Pins the entrypoint contract on both sides and the results schema.

The host writes the job (runner/launch/job.py), the container reads it
(edgeasr_entrypoint/job.py): they must agree. Every Dockerfile must keep its base
an ARG, install the shared entrypoint and carry the contract labels.
"""

import json
import re

import edgeasr_entrypoint
import pytest
from edgeasr_entrypoint.contract import ALL_EVENTS, CONTRACT_VERSION, Event
from edgeasr_entrypoint.job import parse_job

from runner.backends import BACKENDS, CONTAINERS_DIR, RUNNER_IMAGE
from runner.images.build import build_args, parse_versions_label, versions_label
from runner.launch import job as host_job
from runner.results import SCHEMA_VERSION, Summary
from runner.spec import DecodeSettings, Settings, build_run_spec

REQUIRED_SUMMARY_KEYS = {
    "backend", "model", "quant", "device", "dataset", "n_utterances", "n_failed", "audio_s", "wer", "cer",
    "sub", "del", "ins", "rtf", "rtfx", "latency_ms", "load_s", "peak_rss_mib", "image", "versions", "status",
    "error", "schema_version", "unavailable",
    # schema 2 (issue 9): each memory figure under a name that says what it includes
    "peak_rss_scope", "audio_cache_mib", "peak_rss_excl_audio_mib", "peak_vram_torch_mib", "peak_vram_nvml_mib",
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
    written = host_job.make_job(spec)
    job = parse_job(json.loads(json.dumps(written.to_json())))  # through job.json, as the container reads it
    assert job == written  # one record type on both sides: what the host writes is what the container reads
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
    # EDGEASR_CONTRACT without a default, alone or in an ARG step that declares several (`ARG A= B`)
    assert 'org.edgeasr.contract="${EDGEASR_CONTRACT}"' in text
    assert re.search(r"^(ARG|    )\s*EDGEASR_CONTRACT( \\)?$", text, re.M)
    assert 'org.edgeasr.backend="${EDGEASR_BACKEND}"' in text and f"EDGEASR_BACKEND={name}" in text
    assert re.search(r'^ENTRYPOINT \[.*"-m", "edgeasr_entrypoint"\]', text, re.M)
    assert 'org.edgeasr.versions="${EDGEASR_VERSIONS}"' in text
    assert re.search(r"^(ARG|    )\s*EDGEASR_VERSIONS=", text, re.M)
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
    """Every event the entrypoint emits is named through contract.Event, never as a bare string (the loop in
    __main__.py, stream mode's scheduler in stream.py)."""
    package = CONTAINERS_DIR / "common" / "edgeasr_entrypoint"
    source = "".join((package / name).read_text() for name in ("__main__.py", "stream.py"))
    assert not re.findall(r'emit\(\s*["\']', source), "an event emitted by a bare string"
    used = set(re.findall(r"emit\(\s*Event\.([A-Z_]+)", source))
    assert used == {k for k in vars(Event) if k.isupper()}, "an Event constant the entrypoint never emits"


def test_a_jetson_build_takes_its_package_indexes_from_the_host_environment_only(monkeypatch):
    """No index is written into the project: a Jetson variant gets JETSON_PIP_INDEX_URL / PYPI_INDEX_URL only
    where the host's environment sets them (else its base's PIP_INDEX_URL and pip's default); x86 builds use the
    host wheelhouse and never get them."""
    backend = BACKENDS["faster-whisper"]
    monkeypatch.delenv("PYPI_INDEX_URL", raising=False)
    monkeypatch.setenv("JETSON_PIP_INDEX_URL", "http://index.invalid/jp6/cu126")
    args = build_args(backend, wheels_url="", versions="", base=None, platform="jetson-r36")
    assert args["JETSON_PIP_INDEX_URL"] == "http://index.invalid/jp6/cu126" and "PYPI_INDEX_URL" not in args
    assert "JETSON_PIP_INDEX_URL" not in build_args(backend, wheels_url="", versions="", base=None)
    monkeypatch.delenv("JETSON_PIP_INDEX_URL")
    assert "JETSON_PIP_INDEX_URL" not in build_args(backend, wheels_url="", versions="", base=None,
                                                    platform="jetson-r36")


def test_backend_images_are_built_with_the_contract_version_and_their_platform(monkeypatch):
    """`edgeasr images build` passes EDGEASR_CONTRACT (the org.edgeasr.contract label) and EDGEASR_PLATFORM (the
    variant's platform, org.edgeasr.platform) to backend images only: no Dockerfile spells either."""
    backend = BACKENDS["faster-whisper"]
    for name in ("JETSON_PIP_INDEX_URL", "PYPI_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    args = build_args(backend, wheels_url="", versions="x=1", base="b:1", platform="jetson-r36")
    assert args == {"WHEELS_URL": "", "EDGEASR_VERSIONS": "x=1", "EDGEASR_CONTRACT": str(CONTRACT_VERSION),
                    "EDGEASR_PLATFORM": "jetson-r36", "BASE_IMAGE": "b:1",
                    "SHARED_PINS": "soundfile==0.14.0 soxr==1.1.0"}  # containers/common/shared-requirements.txt
    assert build_args(backend, wheels_url="", versions="", base=None)["EDGEASR_PLATFORM"] == "x86"
    runner_args = build_args(RUNNER_IMAGE, wheels_url="", versions="", base=None)
    assert "EDGEASR_CONTRACT" not in runner_args and "EDGEASR_PLATFORM" not in runner_args


def test_summary_schema_is_pinned():
    s = Summary(backend="b", model="m", quant="q", device="cpu", dataset="d", status="ok")
    data = s.to_json()
    assert REQUIRED_SUMMARY_KEYS <= set(data)
    assert data["schema_version"] == SCHEMA_VERSION == 4
    assert "deletions" not in data  # on disk the field is "del"


def _platform_pairs() -> list[tuple[str, str]]:
    from runner.host.platforms import PLATFORMS

    return [(name, platform) for name in sorted(BACKENDS) for platform in PLATFORMS]


@pytest.mark.parametrize("name, platform", _platform_pairs())
def test_a_backend_has_a_dockerfile_for_exactly_the_platforms_of_its_row(name, platform):
    """The one check of variants against the table (every platform x the row's platforms): a platform the row
    names has its Dockerfile variant, tagged per platform (`make images PLATFORM=...`); one it leaves out has
    none, and the row says why. So an x86-only backend is its folder with one Dockerfile (regression, issue 21:
    two tests disagreed, one requiring a Dockerfile.jetson of every backend, the other its absence)."""
    from runner.host.platforms import PLATFORMS
    from runner.images.build import platform_tag

    be, p = BACKENDS[name], PLATFORMS[platform]
    variant = CONTAINERS_DIR / be.build_dir / p.dockerfile
    if platform not in be.platforms:
        # a platform built from another's Dockerfile (arm64: the x86 one for linux/arm64) has no file of its own
        shared = any(PLATFORMS[q].dockerfile == p.dockerfile for q in be.platforms)
        assert shared or not variant.exists(), \
            f"containers/{be.build_dir}/{p.dockerfile} exists, but the row has no {platform}"
        assert be.no_variant and be.platform_problem(platform).startswith(f"backend {name} has no {platform}")
        return
    assert variant.is_file(), f"containers/{be.build_dir}/{p.dockerfile} is missing (the row names {platform})"
    assert platform_tag(be, platform) == f"{be.image.rsplit(':', 1)[0]}:{p.tag}"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_dockerfile_of_a_backend_is_a_platforms_variant(name):
    """No Dockerfile in a backend's folder that no platform builds (a new variant needs its platform first)."""
    from runner.host.platforms import PLATFORMS

    be = BACKENDS[name]
    found = {f.name for f in (CONTAINERS_DIR / be.build_dir).glob("Dockerfile*") if not f.name.endswith(".dockerignore")}
    assert found == {PLATFORMS[p].dockerfile for p in be.platforms}
    assert {"x86", "cuda", "jetson-r35", "jetson-r36"} <= set(PLATFORMS)


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


DOCKERFILES = sorted(p for p in CONTAINERS_DIR.glob("*/Dockerfile*")
                     if "COPY common/edgeasr_entrypoint" in p.read_text())


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_entrypoint_and_adapter_are_compiled_when_the_image_is_built(path):
    """Issue 26 item 2: a backend container's root is read-only, so Python cannot keep the bytecode of what it
    compiles; an image that left the entrypoint and its adapter as sources compiled them again at every start (tens
    of ms of each container's boot). Every Dockerfile compiles /opt/edgeasr after its last COPY there, with the
    interpreter its ENTRYPOINT runs (the bytecode is per Python version)."""
    text = path.read_text()
    python = re.search(r'^ENTRYPOINT \["([^"]+)", "-m", "edgeasr_entrypoint"\]', text, re.M).group(1)
    last_copy = max(m.end() for m in re.finditer(r"^COPY (\S+ )+/opt/edgeasr/\S*$", text, re.M))
    # its own RUN step, or the last command of the RUN that installs (one step fewer over a torch stack)
    compiled = re.search(rf"^(RUN| &&) {re.escape(python)} -m compileall -q /opt/edgeasr$", text, re.M)
    assert compiled and compiled.start() > last_copy
