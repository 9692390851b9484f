"""Static checks of every backend image's Dockerfile: the x86 CPU one and its CUDA and Jetson variants.

The variants cannot be built where these tests run (no GPU, no Jetson, no registry), so this is what
keeps them honest: each file is parsed the way Docker reads it (continuation lines joined, comment lines
dropped) and must honour the image rules of containers/README.md: a public default base behind
`ARG BASE_IMAGE`, the shared entrypoint and the backend's own adapter copied to /opt/edgeasr, the
environment and labels the runner relies on (in one LABEL step: the backend from the image's own
EDGEASR_BACKEND; the versions, base, contract and platform labels from build arguments), `python -m edgeasr_entrypoint` as the ENTRYPOINT, every COPY
source present in the build context (containers/), version pins that agree with requirements.txt (a pin it
lacks, such as a CUDA variant's GPU build of a package, is a stated exception with its reason), and a
build command for each file in containers/PLATFORMS.md. Files are found by glob, so a new backend or a
new variant is checked without touching this test.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgeasr_entrypoint.contract import VERSIONS_FILE
from runner.backends import BACKENDS, IMAGES
from runner.host.platforms import PLATFORMS
from runner.images.build import variant_requirements, versions_label

CONTAINERS = Path(__file__).resolve().parents[2] / "containers"
PLATFORMS_DOC = CONTAINERS / "PLATFORMS.md"
# Folders with a Dockerfile that are not backend images: the table's other images (runner, torch-base), and
# base/, the debootstrap script of the local base image.
NOT_BACKENDS = {i.build_dir for i in IMAGES.values() if i.name not in BACKENDS} | {"base"}
PLATFORM_OF_SUFFIX = {"": "x86", ".cuda": "cuda", ".jetson": "jetson", ".jetson-r35": "jetson-r35"}
PIN = re.compile(r"(?<![\w.\-=<>~!])([A-Za-z0-9][A-Za-z0-9._\-]*)==([0-9][^\s\"'\\;,)]*)")


def backend_dockerfiles() -> list[Path]:
    return sorted(p for p in CONTAINERS.glob("*/Dockerfile*")
                  if p.is_file() and p.parent.name not in NOT_BACKENDS and not p.name.endswith(".dockerignore"))


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str


def parse(text: str) -> list[Instruction]:
    """Docker's reading of a Dockerfile: comment lines dropped (also inside a continuation), a backslash at
    the end of a line joins it to the next."""
    instructions, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            keyword, _, args = current.strip().partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip()))
        current = ""
    assert not current.strip(), "the file ends inside a continuation line"
    return instructions


def key_values(args: str) -> dict[str, str]:
    """ENV / LABEL arguments: `k=v k2="v 2"`, or the legacy `ENV key value`."""
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    pairs = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        assert sep, f"not a key=value pair: {token!r}"
        pairs[key] = value
    return pairs


def copy_sources_and_dest(args: str) -> tuple[list[str], str, dict[str, str]]:
    flags = {}
    rest = args
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        name, _, value = flag[2:].partition("=")
        flags[name] = value
        rest = rest.strip()
    parts = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    assert len(parts) >= 2, f"COPY needs a source and a destination: {args!r}"
    return parts[:-1], parts[-1], flags


def requirement_pins(folder: str) -> dict[str, str]:
    """Pins of the backend's requirements.txt, the pins every backend image shares
    (containers/common/shared-requirements.txt) and, where the image is built on a parent image (torch-base),
    the parent's: the versions every variant must agree with."""
    files = [CONTAINERS / folder / "requirements.txt", CONTAINERS / "common" / "shared-requirements.txt"]
    backend = BACKENDS.get(folder)
    if backend is not None and backend.parent:
        files.append(IMAGES[backend.parent].requirements)
    pins: dict[str, str] = {}
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            m = PIN.match(line.strip())
            if m:
                pins.setdefault(normalize(m.group(1)), m.group(2))
    return pins


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Dockerfile:
    def __init__(self, path: Path):
        self.path = path
        self.folder = path.parent.name
        self.suffix = path.name[len("Dockerfile"):]
        self.text = path.read_text()
        self.instructions = parse(self.text)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for i in self.all("ENV"):
            env.update(key_values(i.args))
        return env

    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        for i in self.all("LABEL"):
            labels.update(key_values(i.args))
        return labels

    def args(self, start: int = 0, end: int | None = None) -> list[tuple[str, str]]:
        """(name, default) of each build argument declared by instructions ``start`` to ``end``, in order; one
        ARG step may declare several (`ARG A= B`); no default reads as ""."""
        return [(name, default) for i in self.instructions[start:end] if i.keyword == "ARG"
                for name, _, default in (token.partition("=") for token in shlex.split(i.args))]

    def copies(self) -> list[tuple[list[str], str, dict[str, str]]]:
        return [copy_sources_and_dest(i.args) for i in self.all("COPY") + self.all("ADD")]

    def header(self) -> str:
        """The leading comment block, without the '#' and with continuation backslashes joined."""
        lines = []
        for line in self.text.splitlines():
            if not line.startswith("#"):
                break
            lines.append(line[1:].strip())
        return re.sub(r"\\\s+", " ", "\n".join(lines))

    @property
    def adapter_module(self) -> str:
        """The adapter the backend table's row for this folder names (what $EDGEASR_ADAPTER must say)."""
        return next(b.adapter for b in BACKENDS.values() if b.build_dir == self.folder)


DOCKERFILES = backend_dockerfiles()
VARIANTS = [p for p in DOCKERFILES if p.name != "Dockerfile"]
IDS = [f"{p.parent.name}/{p.name}" for p in DOCKERFILES]


def test_every_dockerfile_suffix_is_known():
    """Which variants a backend has is the table's (tests/contract/test_contract.py checks every platform against
    every row); here each file's suffix must name a platform, for the label checks below."""
    assert DOCKERFILES, "no backend Dockerfile found under containers/"
    for suffix in {p.name[len("Dockerfile"):] for p in DOCKERFILES}:
        assert suffix in PLATFORM_OF_SUFFIX, f"unknown Dockerfile variant {suffix!r}: add its platform here"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_base_is_an_arg_with_a_public_default(path):
    df = Dockerfile(path)
    first_from = next(n for n, i in enumerate(df.instructions) if i.keyword == "FROM")
    defaults = [default for name, default in df.args(0, first_from) if name == "BASE_IMAGE"]
    assert defaults and defaults[0], "ARG BASE_IMAGE=<default> must come before the first FROM"
    assert re.fullmatch(r"[a-z0-9][\w./-]*(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", defaults[0]), defaults[0]
    stages: dict[str, str] = {}
    final = None
    for i in df.all("FROM"):
        image, *rest = i.args.split()
        if len(rest) == 2 and rest[0].lower() == "as":
            stages[rest[1].lower()] = image
        final = image
    while final and final.lower() in stages:  # a final stage built FROM an earlier stage
        final = stages[final.lower()]
    assert final == "${BASE_IMAGE}", "the final stage must be built FROM ${BASE_IMAGE}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_no_package_index_host_is_written_into_a_dockerfile(path):
    """An index comes from the host's configuration (a build argument) or is pip's own default: a URL default
    would send every user's build to a host the project chose (the base image is the one public default)."""
    df = Dockerfile(path)
    for name, default in df.args():
        if name != "BASE_IMAGE":
            assert "://" not in default, f"{path}: ARG {name} defaults to a URL ({default})"
    assert not re.search(r"https?://(?!\$)", " ".join(i.args for i in df.all("RUN"))), f"{path}: a URL in a RUN step"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_copies_the_entrypoint_and_the_backends_own_adapter(path):
    df = Dockerfile(path)
    copies = [(sources, dest) for sources, dest, flags in df.copies() if "from" not in flags]
    assert any("common/edgeasr_entrypoint" in [s.rstrip("/") for s in sources]
               and dest.rstrip("/") in ("/opt/edgeasr/edgeasr_entrypoint", "/opt/edgeasr")
               for sources, dest in copies), "COPY common/edgeasr_entrypoint /opt/edgeasr/edgeasr_entrypoint"
    adapter = f"{df.folder}/{df.adapter_module}.py"
    assert any(adapter in sources and dest.startswith("/opt/edgeasr") for sources, dest in copies), \
        f"COPY {adapter} /opt/edgeasr/"
    assert (CONTAINERS / adapter).is_file(), f"the adapter containers/{adapter} does not exist"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_every_copy_source_exists_in_the_build_context(path):
    df = Dockerfile(path)
    for sources, _dest, flags in df.copies():
        if "from" in flags:
            continue  # from another stage or image, not from the context
        for source in sources:
            if re.match(r"https?://", source):
                continue
            assert not source.startswith(("/", "..")), f"{source!r} leaves the build context"
            assert list(CONTAINERS.glob(source.rstrip("/"))), \
                f"COPY source {source!r} is not in the build context (containers/)"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_environment_names_the_backend_and_its_adapter(path):
    df = Dockerfile(path)
    env = df.env()
    assert env.get("EDGEASR_BACKEND") == df.folder
    assert env.get("EDGEASR_ADAPTER") == df.adapter_module
    assert env.get("HF_HUB_OFFLINE") == "1", "HF_HUB_OFFLINE=1 unless the host allows a download"
    assert "/opt/edgeasr" in env.get("PYTHONPATH", "").split(":")


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_labels_name_the_backend_the_contract_and_the_platform(path):
    """One LABEL step (the legacy builder makes a step of each label passed by the API) that spells no fact of
    the table: the backend is the image's own EDGEASR_BACKEND (checked against the row above), the contract and
    the platform are build arguments that `edgeasr images build` sets (runner/images/build.py build_args)."""
    df = Dockerfile(path)
    assert len(df.all("LABEL")) == 1, "one LABEL step"
    labels = df.labels()
    assert labels.get("org.edgeasr.backend") == "${EDGEASR_BACKEND}"
    assert labels.get("org.edgeasr.contract") == "${EDGEASR_CONTRACT}", \
        "the contract label comes from the EDGEASR_CONTRACT build argument (edgeasr_entrypoint/contract.py)"
    assert labels.get("org.edgeasr.platform") == "${EDGEASR_PLATFORM}", \
        "the platform label comes from the EDGEASR_PLATFORM build argument (the platform table)"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_versions_base_contract_and_platform_labels_come_from_build_arguments(path):
    df = Dockerfile(path)
    labels = df.labels()
    assert labels.get("org.edgeasr.versions") == "${EDGEASR_VERSIONS}"
    assert labels.get("org.edgeasr.base") == "${BASE_IMAGE}"
    last_from = max(n for n, i in enumerate(df.instructions) if i.keyword == "FROM")
    stage_args = dict(df.args(last_from))
    assert "BASE_IMAGE" in stage_args, "ARG BASE_IMAGE again after the last FROM, or org.edgeasr.base is empty"
    assert "EDGEASR_VERSIONS" in stage_args, "ARG EDGEASR_VERSIONS in the final stage"
    for name in ("EDGEASR_CONTRACT", "EDGEASR_PLATFORM"):
        assert stage_args.get(name, None) == "", \
            f"ARG {name} in the final stage, without a default (the image build passes it)"
    default = stage_args["EDGEASR_VERSIONS"]
    if default:  # a default must be exactly what `edgeasr images build` would pass
        backend = BACKENDS.get(df.folder)
        wanted = versions_label(backend, platform=PLATFORM_OF_SUFFIX[df.suffix]) if backend else None
        assert default == wanted, f"EDGEASR_VERSIONS default {default!r} is not the requirements' {wanted!r}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_entrypoint_runs_the_shared_module(path):
    df = Dockerfile(path)
    entrypoints = df.all("ENTRYPOINT")
    assert entrypoints, "no ENTRYPOINT"
    argv = json.loads(entrypoints[-1].args)  # exec form: no shell between Docker and Python
    assert isinstance(argv, list) and re.search(r"(^|/)python3?$", argv[0]), argv
    assert argv[1:3] == ["-m", "edgeasr_entrypoint"], argv
    if df.suffix.startswith(".jetson"):
        assert argv[0] == "python3", "Jetson bases bring their own python3 (system or their /opt/venv on PATH)"


#: Pins a variant holds that requirements.txt has no line for, each with the reason it differs: (file, package)
#: -> why. Every other pin of a Dockerfile or of a variant's own requirements file (requirements-<platform>.txt)
#: must be the one requirements.txt has; an entry here that no file pins any more fails too.
NOT_IN_REQUIREMENTS = {
    ("whisperx/Dockerfile.jetson", "torchvision"): "whisperx 3.8.6 pins torchvision~=0.23.0 (torch 2.8's); the Jetson "
    "index's CUDA build replaces the base's, which the x86 image takes as a dependency and does not pin",
    ("onnxruntime/requirements-cuda.txt", "onnxruntime-gpu"): "the CUDA build of onnxruntime is another package, "
    "released apart (PyPI has no onnxruntime-gpu 1.32.0, the CPU pin), and from 1.27 its Linux wheels link CUDA 13 "
    "(libcublas.so.13); the image's CUDA is torch 2.8.0's 12.8, so it takes 1.26.0, the newest CUDA 12 build",
}
VARIANT_REQUIREMENTS = sorted(p for p in CONTAINERS.glob("*/requirements-*.txt") if p.parent.name in BACKENDS)


def _pins_differ(where: str, pins: dict[str, str], found: list[tuple[str, str]]) -> list[str]:
    """The stated exceptions ``found`` (pins of file ``where``) uses; AssertionError on any other difference."""
    used = []
    for name, version in found:
        expected = pins.get(normalize(name))
        if expected is None:
            assert (where, normalize(name)) in NOT_IN_REQUIREMENTS, \
                f"{where}: {name}=={version} is pinned in no requirements.txt: pin it there, or add it to " \
                "NOT_IN_REQUIREMENTS with the reason it differs"
            used.append(normalize(name))
        else:
            assert version == expected, f"{where}: {name}=={version}, {name}=={expected} in requirements.txt"
    return used


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_version_pins_agree_with_requirements(path):
    df = Dockerfile(path)
    _pins_differ(f"{df.folder}/{path.name}", requirement_pins(df.folder),
                 [pin for i in df.all("RUN") for pin in PIN.findall(i.args)])


@pytest.mark.parametrize("path", VARIANT_REQUIREMENTS, ids=[f"{p.parent.name}/{p.name}" for p in VARIANT_REQUIREMENTS])
def test_a_variants_own_requirements_replace_pinned_packages_for_a_stated_reason(path):
    """containers/<backend>/requirements-<platform>.txt: what that platform's Dockerfile installs in place of
    requirements.txt's packages (onnxruntime-gpu for onnxruntime on CUDA). Its Dockerfile installs the file (so no
    version is written twice), each pin names the CPU package it replaces, and one that requirements.txt does not
    pin is a stated exception."""
    platform = path.stem.removeprefix("requirements-")
    suffix = next(s for s, p in PLATFORM_OF_SUFFIX.items() if p == platform)
    dockerfile = Dockerfile(path.parent / f"Dockerfile{suffix}")
    assert any(f"{path.parent.name}/{path.name}" in sources for sources, _dest, _flags in dockerfile.copies()), \
        f"{dockerfile.path.name} does not COPY {path.name}"
    assert re.search(rf"-r /tmp/\S*{re.escape(path.stem)}\S*\.txt", " ".join(i.args for i in dockerfile.all("RUN")))
    pins = requirement_pins(path.parent.name)
    variant = variant_requirements(BACKENDS[path.parent.name], platform)
    assert variant.pins and all(normalize(cpu) in pins for cpu in variant.replaces), variant.replaces
    used = _pins_differ(f"{path.parent.name}/{path.name}", pins, list(variant.pins.items()))
    assert set(used) <= set(variant.replaces.values()), "a package requirements.txt lacks replaces one it pins"


def test_every_stated_exception_is_still_needed():
    pinned = {(f"{p.parent.name}/{p.name}", normalize(n)) for p in DOCKERFILES
              for i in Dockerfile(p).all("RUN") for n, _ in PIN.findall(i.args)}
    pinned |= {(f"{p.parent.name}/{p.name}", n) for p in VARIANT_REQUIREMENTS
               for n in variant_requirements(BACKENDS[p.parent.name], p.stem.removeprefix("requirements-")).pins}
    assert set(NOT_IN_REQUIREMENTS) <= pinned, set(NOT_IN_REQUIREMENTS) - pinned


def test_onnxruntimes_cuda_variant_replaces_the_cpu_wheel_by_what_it_can_run():
    """The base (the torch stack) may hold the CPU onnxruntime, importable but without the CUDA provider: the
    install is decided by the providers, not by the import, and removes the CPU package first (both own the
    `onnxruntime` module); the build fails if CUDAExecutionProvider is still missing."""
    runs = " ".join(i.args for i in Dockerfile(CONTAINERS / "onnxruntime" / "Dockerfile.cuda").all("RUN"))
    decide = runs.index("sys.exit('CUDAExecutionProvider' not in onnxruntime.get_available_providers())")
    uninstall = runs.index("pip uninstall -y onnxruntime")
    install = runs.index("-r /tmp/requirements-cuda.txt")
    assert decide < uninstall < install
    assert 'python -c "import onnxruntime" ' not in runs


@pytest.mark.parametrize("path", VARIANTS, ids=[f"{p.parent.name}/{p.name}" for p in VARIANTS])
def test_variant_header_says_how_to_build_it_and_what_it_cannot_do(path):
    df = Dockerfile(path)
    assert df.text.startswith("#"), "a variant starts with a comment: purpose, build command, tags, limits"
    header = df.header()
    default = next(default for name, default in df.args() if name == "BASE_IMAGE")
    command = re.search(rf"docker build -f containers/{re.escape(df.folder)}/{re.escape(path.name)}"
                        rf"\s+--build-arg BASE_IMAGE=(\S+)"
                        rf"(\s+--build-arg SHARED_PINS=\"\$\(grep -v '\^#' containers/common/shared-requirements.txt\)\")?"
                        rf"\s+-t (edgeasr/{re.escape(df.folder)}:\S+) containers\b",
                        header)
    assert command, "the header must hold the exact build command (docker build -f ... -t edgeasr/<b>:<tag> containers)"
    assert command.group(1) == default, "the build command's BASE_IMAGE is the ARG's default"
    assert bool(command.group(2)) == ("${SHARED_PINS" in df.text), \
        "a variant that installs the shared pins says how to pass them (--build-arg SHARED_PINS=...)"
    platform = PLATFORM_OF_SUFFIX[df.suffix]
    assert command.group(3).split(":")[1].startswith(platform), f"tag {command.group(3)} is not a {platform} tag"
    assert "Known limits" in header
    assert "not built" in header, "say plainly what was not built or run"


@pytest.mark.parametrize("path", VARIANTS, ids=[f"{p.parent.name}/{p.name}" for p in VARIANTS])
def test_platforms_doc_has_a_build_command_for_the_file(path):
    """Every CUDA and Jetson variant is documented with its build command (its base and limits need saying);
    a backend's plain x86 Dockerfile needs no line there: `edgeasr images build` builds it from the table row,
    so a CPU-only backend is its folder plus one row (tests/e2e/test_fake_backend_e2e.py)."""
    doc = PLATFORMS_DOC.read_text()
    assert f"docker build -f containers/{path.parent.name}/{path.name} " in doc, \
        f"containers/PLATFORMS.md has no build command for containers/{path.parent.name}/{path.name}"


@pytest.mark.parametrize("path", VARIANTS, ids=[f"{p.parent.name}/{p.name}" for p in VARIANTS])
def test_platforms_doc_names_the_default_base(path):
    df = Dockerfile(path)
    default = next(default for name, default in df.args() if name == "BASE_IMAGE")
    assert default in PLATFORMS_DOC.read_text(), f"containers/PLATFORMS.md does not name {default}"


def test_platforms_doc_says_the_variants_were_not_built_here():
    doc = PLATFORMS_DOC.read_text()
    assert "not built" in doc and "statically" in doc


R35 = [p for p in DOCKERFILES if p.name == "Dockerfile.jetson-r35"]
R35_IDS = [f"{p.parent.name}/{p.name}" for p in R35]


def test_every_backend_has_a_jetpack5_variant():
    """Every backend that the table says runs on JetPack 5 has its Dockerfile.jetson-r35 (the others say why not)."""
    assert {p.parent.name for p in R35} == {b.build_dir for b in BACKENDS.values() if "jetson-r35" in b.platforms}


@pytest.mark.parametrize("path", R35, ids=R35_IDS)
def test_jetpack5_variant_uses_the_bases_libraries_and_pins_nothing(path):
    """JetPack 5 images carry their own CUDA 11 builds on Python 3.8: our x86 pins (Python >= 3.9, CUDA 12)
    must not be installed over them, and the Python floor is the entrypoint's 3.8."""
    df = Dockerfile(path)
    runs = " ".join(i.args for i in df.all("RUN"))
    assert not PIN.findall(runs), f"pinned versions in a JetPack 5 variant: {PIN.findall(runs)}"
    assert "sys.version_info < (3, 8)" in runs
    assert "JETSON_PIP_INDEX_URL" not in df.text, "no jetson-ai-lab index for JetPack 5 (no jp5 CUDA 11 builds there)"
    assert re.search(r"dustynv/[\w.-]+:r35\.", next(default for name, default in df.args() if name == "BASE_IMAGE"))


@pytest.mark.parametrize("path", R35, ids=R35_IDS)
def test_jetpack5_variant_records_the_versions_it_carries(path):
    """A build step writes the carried versions (`name=version,...`) to /opt/edgeasr/versions.txt, and the
    header's second build command labels them from there."""
    df = Dockerfile(path)
    runs = " ".join(i.args for i in df.all("RUN"))
    assert "> /opt/edgeasr/versions.txt" in runs and "paste -sd, -" in runs and "sed 's/==/=/'" in runs
    assert "cat /opt/edgeasr/versions.txt" in runs  # printed in the build log too
    header = df.header()
    assert re.search(r'--build-arg EDGEASR_VERSIONS="\$\(docker run --rm --entrypoint cat '
                     rf'edgeasr/{re.escape(df.folder)}:jetson-r35 /opt/edgeasr/versions.txt\)"', header), \
        "the header must show how to label the carried versions"


R36 = [p for p in DOCKERFILES if p.name == "Dockerfile.jetson"]
R36_IDS = [f"{p.parent.name}/{p.name}" for p in R36]


@pytest.mark.parametrize("path", R36, ids=R36_IDS)
def test_jetpack6_variant_records_what_it_holds_after_its_installs(path):
    """Its base's builds win over the pins, so the label is what the image holds: after every install step (and
    the entrypoint's COPY, whose module writes it) the build writes the versions of the packages its context's
    requirements.txt pins to the platform's versions file, which `edgeasr images build` reads back; the header
    shows how by hand."""
    df = Dockerfile(path)
    steps = [i for i in df.instructions if i.keyword in ("RUN", "COPY")]
    held = next(n for n, i in enumerate(steps) if "edgeasr_entrypoint.held_versions" in i.args)
    assert f"/tmp/edgeasr-requirements.txt > {VERSIONS_FILE}" in re.sub(r"\s+", " ", steps[held].args)
    assert any(i.keyword == "COPY" and i.args.split() == [f"{df.folder}/requirements.txt",
                                                           "/tmp/edgeasr-requirements.txt"] for i in steps[:held])
    assert not any("pip install" in i.args or "pypi " in i.args for i in steps[held:]), "an install after it"
    assert any("common/edgeasr_entrypoint" in i.args for i in steps[:held] if i.keyword == "COPY")
    assert PLATFORMS["jetson-r36"].versions_file == VERSIONS_FILE
    assert re.search(r'--build-arg EDGEASR_VERSIONS="\$\(docker run --rm --entrypoint cat '
                     rf'edgeasr/{re.escape(df.folder)}:jetson-r36 {re.escape(VERSIONS_FILE)}\)"', df.header())


def test_jetpack5_whisperx_keeps_its_vad_model_where_the_adapter_looks():
    df = Dockerfile(CONTAINERS / "whisperx" / "Dockerfile.jetson-r35")
    import importlib.util

    spec = importlib.util.spec_from_file_location("wx_adapter_for_env",
                                                  CONTAINERS / "whisperx" / "edgeasr_backend_whisperx.py")
    adapter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adapter)
    path = df.env().get(adapter.VAD_FILE_ENV)
    assert path and path.startswith("/opt/edgeasr/")
    runs = " ".join(i.args for i in df.all("RUN"))
    assert f"edgeasr_store_vad_model.py {path}" in runs



EVERY_DOCKERFILE = sorted(p for p in CONTAINERS.rglob("Dockerfile*") if p.is_file() and "wheels" not in p.parts)
# Built in one pass (`edgeasr images build`, x86 and arm64): the backends' and the shared images' Dockerfiles.
ONE_PASS = [p for p in EVERY_DOCKERFILE if p.name == "Dockerfile" and p.parent.parent == CONTAINERS]


@pytest.mark.parametrize("path", EVERY_DOCKERFILE, ids=[str(p.relative_to(CONTAINERS)) for p in EVERY_DOCKERFILE])
def test_the_build_arguments_after_the_last_run_are_one_step(path):
    """Each instruction after the big install is a step of the classic builder over a layer of gigabytes (a
    container made, then committed by walking its whole tree: fuse-overlayfs has no native diff): 25 to 35 s each
    on a 2-core host, where whisperx's 14 steps on torch-base took 6 min (issue 26). The labels' build arguments
    are declared in one ARG step there, not one each (the variants built twice keep them last: the second build
    must find every step before its LABEL cached)."""
    df = Dockerfile(path)
    last_work = max(n for n, i in enumerate(df.instructions) if i.keyword in ("RUN", "COPY", "ADD", "FROM"))
    trailing = [i for i in df.instructions[last_work + 1:] if i.keyword == "ARG"]
    assert len(trailing) <= 1, f"{len(trailing)} ARG steps after the last RUN/COPY: declare them in one (ARG A= B C)"


@pytest.mark.parametrize("path", ONE_PASS, ids=[str(p.relative_to(CONTAINERS)) for p in ONE_PASS])
def test_an_image_built_in_one_pass_declares_its_metadata_before_its_install(path):
    """In the Dockerfiles built in one pass, every build argument is one ARG step right after FROM, with ENV,
    LABEL and ENTRYPOINT, while the layer below is still the small base: after the install each step costs
    25-35 s (above). Their values are the same at each build of one image, so the install stays cached."""
    df = Dockerfile(path)
    last_from = max(n for n, i in enumerate(df.instructions) if i.keyword == "FROM")
    first_work = next(n for n, i in enumerate(df.instructions) if n > last_from and i.keyword in ("RUN", "COPY"))
    late = [i.keyword for i in df.instructions[first_work:] if i.keyword not in ("RUN", "COPY", "ADD")]
    assert not late, f"{', '.join(late)} after the first RUN/COPY: put them before it"
    assert [i.keyword for i in df.instructions[last_from + 1:first_work]].count("ARG") == 1, \
        "the build arguments in one ARG step after FROM"
