"""Issue 20, item 6: smaller guards on what datasets, experiment files, the environment and images hand the
runner: a big manifest with --limit, a NUL byte in a manifest path, DOCKER_HOST, home folders trusted by an
experiment file, a grid too big to start unasked, an image without the contract label."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import write_tone

from runner.launch import paths
from runner.data.load import load_dataset
from runner.errors import UserError


def _big_manifest(folder: Path, n: int, n_files: int = 100) -> Path:
    """``n`` lines over ``n_files`` real audio files, each in a folder of its own."""
    tone = write_tone(folder / "f0" / "a.wav", seconds=0.1)
    for i in range(1, n_files):
        (folder / f"f{i}").mkdir()
        (folder / f"f{i}" / "a.wav").write_bytes(tone.read_bytes())
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"u{i}", "audio": f"f{i % n_files}/a.wav", "text": "a b"}) + "\n"
                                for i in range(n)))
    return manifest


def test_a_100000_line_manifest_with_a_limit_is_read_at_once(tmp_path):
    """Regression: `--limit 2` over a 100,000-line manifest took 30 s: every path of the whole manifest was
    resolved, and the system-file check built each one's parents again for every system location."""
    manifest = _big_manifest(tmp_path, 100_000)
    t0 = time.process_time()  # CPU time: a busy machine slows the wall clock, not this
    dataset = load_dataset(manifest, limit=2)
    limited_s = time.process_time() - t0
    assert [u.id for u in dataset.utterances] == ["u0", "u1"] and all(u.problem is None for u in dataset.utterances)
    assert limited_s < 0.5, f"{limited_s:.1f} s of CPU for the first 2 lines"
    t0 = time.process_time()
    whole = load_dataset(manifest)  # and the whole of it: every path checked, at a cost per folder, not per file
    whole_s = time.process_time() - t0
    assert len(whole.utterances) == 100_000 and whole.readable == whole.utterances
    assert whole_s < 10.0, f"{whole_s:.1f} s of CPU for 100,000 lines (it was 18 s)"


def test_system_file_check_is_the_same_by_text(tmp_path):
    """The check by text gives what the check by path parts gave: inside, the folder itself, a sibling whose
    name starts the same (/etcetera is not /etc), and a path with ``..`` that is not resolved."""
    assert paths.is_system_file(Path("/etc/passwd")) and paths.is_system_file(Path("/etc"))
    assert paths.is_system_file(Path("/proc/self/environ"))
    assert not paths.is_system_file(Path("/etcetera/a.flac")) and not paths.is_system_file(Path("/srv/etc/a.flac"))
    assert paths._within("/a/b", "/a") and paths._within("/a", "/a") and paths._within("/x", "/")
    assert not paths._within("/ab", "/a") and not paths._within("/a", "/a/b")


def test_a_nul_byte_in_a_manifest_path_is_a_sentence_naming_the_file_and_line(tmp_path):
    """Regression: a NUL byte in a manifest's audio path (or a *.trans.txt id) raised ValueError ("embedded null
    byte"), an unexpected error."""
    write_tone(tmp_path / "m" / "a.wav", seconds=0.1)
    manifest = tmp_path / "m" / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n" + json.dumps({"audio": "b\u0000.wav"}) + "\n")
    with pytest.raises(UserError, match=rf"^{manifest}:2: \"audio\" holds a NUL byte \('b\\x00.wav'\)"):
        load_dataset(manifest)
    trans = tmp_path / "ls" / "1" / "1.trans.txt"
    write_tone(trans.parent / "1-0.flac", seconds=0.1, fmt="FLAC")
    trans.write_text("1-0 a b\n1-\x001 c d\n")
    with pytest.raises(UserError, match=rf"^{trans}:2: the utterance id holds a NUL byte"):
        load_dataset(tmp_path / "ls")


def _fake_model(models: Path) -> Path:
    folder = models / "tiny.en"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"x")
    (folder / "config.json").write_text("{}")
    return models


@pytest.fixture
def docker_host(monkeypatch):
    """Set DOCKER_HOST for one test, with the caches that depend on it cleared before and after."""
    def clear() -> None:
        paths.system_locations.cache_clear()
        paths._system_texts.cache_clear()
        paths._in_system_location.cache_clear()

    def set_host(value: str) -> None:
        monkeypatch.setenv("DOCKER_HOST", value)
        clear()

    yield set_host
    monkeypatch.undo()
    clear()


def test_an_unreachable_engine_through_docker_host_is_said_as_such(tmp_path, docker_host, capsys):
    """Regression: DOCKER_HOST naming a socket that is not there (an engine that is down) made the socket's folder
    a "system location", so the dataset, model and output folders beside it were refused for that instead."""
    from runner import cli

    models = _fake_model(tmp_path / "models")
    write_tone(tmp_path / "data" / "a.wav", seconds=0.1)
    sock = f"unix://{tmp_path}/engine.sock"
    docker_host(sock)
    assert cli.main(["run", "--data", str(tmp_path / "data"), "--models-dir", str(models),
                     "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "system location" not in err
    assert err.startswith(f"edgeasr: cannot reach the Docker Engine at DOCKER_HOST={sock}: no socket there;"), err
    assert err.count("\n") == 1


def test_the_engines_socket_folder_stays_a_system_location_while_a_socket_is_there(tmp_path, docker_host):
    import socket

    (tmp_path / "run").mkdir()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "run" / "docker.sock"))
        docker_host(f"unix://{tmp_path}/run/docker.sock")
        assert paths.is_system_file(tmp_path / "run" / "a.wav") and not paths.is_system_file(tmp_path / "a.wav")
    docker_host("tcp://127.0.0.1:1")
    assert paths.docker_socket_dir() is None


def _sweep_args(experiment: Path, *argv: str):
    from helpers import command_args

    from runner.commands import sweep as sweep_cmd

    return command_args(sweep_cmd, str(experiment), *argv)


def _experiment(tmp_path: Path, audio_roots: list[str]) -> Path:
    write_tone(tmp_path / "data" / "a.wav", seconds=0.1)
    file = tmp_path / "exp.yaml"
    file.write_text(json.dumps({"name": "homes", "defaults": {
        "backend": "faster-whisper", "model": "tiny.en", "quant": "int8", "device": "cpu",
        "dataset": str(tmp_path / "data"), "audio_roots": audio_roots, "telemetry": {"sampler": "none"}}}))
    return file


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """$HOME in tmp_path: a home folder for home_folders() (cached: cleared before and after)."""
    folder = tmp_path / "home" / "alice"
    (folder / "datasets").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(folder))
    paths.home_folders.cache_clear()
    yield folder
    monkeypatch.undo()
    paths.home_folders.cache_clear()


@pytest.mark.parametrize("root", ["home", "/root", "home/.."])
def test_an_experiment_cannot_trust_a_home_folder_alone(tmp_path, home, capsys, root):
    """A stranger's experiment file naming ~ (or /root, or /home) in audio_roots would let its manifest hand a
    backend container any file there (~/.ssh included): refused unless the command line says so too."""
    from runner.commands import sweep as sweep_cmd

    named = {"home": str(home), "/root": "/root", "home/..": str(home.parent)}[root]
    file = _experiment(tmp_path, [named])
    with pytest.raises(UserError) as err:
        sweep_cmd.main(_sweep_args(file, "--plan"))
    what = "a folder holding home folders" if root == "home/.." else "a home folder"
    assert str(err.value) == (
        f"exp.yaml: audio_roots names {Path(named).resolve()}, {what}: an experiment file alone may not trust it "
        f"(a manifest could then show a backend container any file in it); if you do, say so on the command line "
        f"too: --audio-root {Path(named).resolve()}")
    assert sweep_cmd.main(_sweep_args(file, "--plan", "--audio-root", named)) == 0
    capsys.readouterr()


def test_an_experiment_may_trust_a_folder_inside_a_home_folder(tmp_path, home, capsys):
    from runner.commands import sweep as sweep_cmd

    assert sweep_cmd.main(_sweep_args(_experiment(tmp_path, [str(home / "datasets")]), "--plan")) == 0
    capsys.readouterr()


def _big_grid(tmp_path: Path, repeats: int) -> Path:
    for name in ("a", "b"):
        write_tone(tmp_path / "data" / f"{name}.wav", seconds=0.5)
    file = tmp_path / "big.yaml"
    file.write_text(json.dumps({"name": "big", "defaults": {
        "backend": "faster-whisper", "model": "tiny.en", "quant": "int8", "device": "cpu",
        "dataset": str(tmp_path / "data"), "repeats": repeats}}))
    return file


def test_a_grid_over_1000_conditions_says_how_long_and_needs_yes(tmp_path, capsys):
    """Without a terminal too (this test has none): no prompt, a sentence with the estimate and exit 2."""
    from runner.commands import sweep as sweep_cmd

    file = _big_grid(tmp_path, 1001)
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        sweep_cmd.main(_sweep_args(file, "--out", str(out)))
    # 1 container: 5 s of idle baseline + 2 s loaded-idle; 1001 conditions x 1 s of audio at RTF 1: 1008 s
    assert str(err.value) == (
        f"big.yaml: 1001 conditions in 1 container, more than 1,000: about 17 min (estimated from 1 container × 7 s "
        f"of idle baseline and loaded-idle window; 17 min of audio at RTF 1 (real time, assumed: no condition has "
        f"finished in {out} yet; model loading not counted)); pass --yes to start it (a terminal or not: compose, "
        f"a fleet, CI), or narrow the grid")
    assert not out.exists()  # nothing was started, not even the results folder
    assert sweep_cmd.main(_sweep_args(file, "--out", str(out), "--plan")) == 0  # a plan starts nothing: no --yes
    assert "more than 1,000: about 17 min" in capsys.readouterr().err


def test_the_estimate_uses_what_finished_in_the_results_folder(tmp_path):
    from runner.experiment.estimate import size_note

    from runner.experiment import load_experiment

    out = tmp_path / "out"
    out.mkdir()
    done = [{"status": "ok", "summary": {"rtf": rtf, "load_s": 3.0}} for rtf in (0.1, 0.2, 0.3)]
    (out / "conditions.jsonl").write_text("".join(json.dumps(d) + "\n" for d in [*done, {"status": "error"}]))
    note = size_note(load_experiment(_big_grid(tmp_path, 2000)), out)
    # 7 s + 3 s of loading + 2000 s of audio x RTF 0.2 = 410 s
    assert note.endswith(f"about 7 min (estimated from 1 container × 7 s of idle baseline and loaded-idle window and "
                         f"3 s of model loading; 33 min of audio at RTF 0.2, the median of the 3 conditions already "
                         f"finished in {out})")
    assert size_note(load_experiment(_big_grid(tmp_path, 1000)), out) is None


def test_no_shipped_experiment_needs_yes(root, tmp_path):
    """Every shipped experiment loads and none is big enough to need --yes. Loaded from a copy of the root whose
    data/ also holds the input-length ladders that experiment headers make first (espnet-ctc-weight.yaml's
    data/lengths, long-form.yaml's data/long-form: made, not shipped), each with its header's own command."""
    import shlex

    from runner.cli import main
    from runner.experiment.estimate import CONFIRM_CONDITIONS
    from runner.experiment import load_experiment

    (tmp_path / "data").mkdir()
    (tmp_path / "experiments").symlink_to(root / "experiments")
    (tmp_path / "data" / "default").symlink_to(root / "data" / "default")
    made = []
    for name in ("espnet-ctc-weight.yaml", "long-form.yaml"):
        header = (root / "experiments" / name).read_text()
        (command,) = [line.lstrip("# ").strip() for line in header.splitlines() if "edgeasr data lengths" in line]
        args = shlex.split(command)[1:]
        args = [str(tmp_path / a) if a.startswith("data/") else a for a in args]
        assert main(args) == 0
        made.append(Path(args[args.index("--out") + 1]))
    assert all((m / "manifest.jsonl").is_file() for m in made) and {m.name for m in made} == {"lengths", "long-form"}
    sizes = {f.name: load_experiment(f, root=tmp_path).n_conditions
             for f in sorted((tmp_path / "experiments").glob("*.yaml"))}
    assert sizes and max(sizes.values()) <= CONFIRM_CONDITIONS, sizes


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "edgeasr" / "checked-images.json"


def test_an_image_without_the_contract_label_runs_only_once_check_image_passed_it(state):
    """Regression: an image with no (or an empty) org.edgeasr.contract label passed the contract check."""
    from edgeasr_entrypoint.contract import CONTRACT_VERSION

    from runner.launch.checked_images import remember
    from runner.launch.docker_engine import ImageInfo
    from runner.launch.engines import check_contract
    from runner.launch.job import image_contract

    image = ImageInfo("sha256:" + "a" * 64, ["my/asr:1"], {"org.edgeasr.backend": "faster-whisper"})
    for labels in (image.labels, {**image.labels, "org.edgeasr.contract": ""}):
        with pytest.raises(UserError) as err:
            check_contract("my/asr:1", ImageInfo(image.id, image.tags, labels), 3)
        assert str(err.value) == (
            f"image my/asr:1 has no org.edgeasr.contract label, so nothing says which entrypoint contract it speaks; "
            f"run `edgeasr check-image my/asr:1` once where it runs (an image that passes every check is remembered "
            f"by its id, sha256:aaaaaaaaaaaa, in {state}), or build it with EDGEASR_CONTRACT=3 (containers/README.md)")
    remember(image.id, "my/asr:1", 1)  # passed for a contract older than any job can be written in: no trust
    with pytest.raises(UserError):
        check_contract("my/asr:1", image, 3)
    # passed for an older contract (issue 21 item 2: a minimum version per feature): it runs, and its jobs are
    # written in the contract it was checked for, as a label would say
    remember(image.id, "my/asr:1", 2)
    check_contract("my/asr:1", image, 3)
    assert image_contract(image.labels, image.id) == 2 and image_contract(image.labels) == CONTRACT_VERSION
    assert remember(image.id, "my/asr:1", 3) == state and oct(state.stat().st_mode)[-3:] == "600"
    check_contract("my/asr:1", image, 3)  # passes
    assert image_contract(image.labels, image.id) == 3
    assert image_contract({"org.edgeasr.contract": "2"}, image.id) == 2  # a label says it first
    with pytest.raises(UserError, match="no org.edgeasr.contract label"):  # the trust is the id's, not the tag's
        check_contract("my/asr:1", ImageInfo("sha256:" + "b" * 64, image.tags, image.labels), 3)
    # an older contract is no refusal of the image (issue 21 item 2: a minimum version per feature); one below the
    # oldest a job can be written in, or a label that is no version, is
    check_contract("my/asr:1", ImageInfo(image.id, image.tags, {"org.edgeasr.contract": "2"}), 3)
    for label in ("1", "x"):
        with pytest.raises(UserError, match=f"speaks entrypoint contract {label}; this runner writes jobs in "
                                            f"contract 2 to 3"):
            check_contract("my/asr:1", ImageInfo(image.id, image.tags, {"org.edgeasr.contract": label}), 3)
    state.write_text("not json")
    with pytest.raises(UserError):  # an unreadable record trusts nothing
        check_contract("my/asr:1", image, 3)


def test_a_fleet_refuses_an_unlabelled_image_its_node_did_not_check():
    from types import SimpleNamespace

    from edgeasr_entrypoint.contract import CONTRACT_VERSION

    from runner.fleet.preflight import FleetImages
    from runner.backends import BACKENDS
    from runner.launch.checked_images import contract_problem

    ref = BACKENDS["faster-whisper"].default_image(device="cpu")
    spec = SimpleNamespace(settings=SimpleNamespace(target="t"), backend=BACKENDS["faster-whisper"], device="cpu",
                           image=ref)

    def problems(entry: dict) -> list:
        images = FleetImages({"t": [{"hostname": "h", "platform": "x86", "images": {ref: entry}}]})
        images.image(spec)
        return images.problems

    entry = {"id": "sha256:" + "c" * 64, "tags": [ref], "labels": {}}  # its node's check-image did not pass it
    assert [p[2] for p in problems(entry)] == [contract_problem(ref, entry["id"], {}, CONTRACT_VERSION, checked=False)]
    assert problems(entry)[0][2].startswith(f"image {ref} has no org.edgeasr.contract label")
    assert problems({**entry, "checked": True}) == []
    assert "speaks entrypoint contract 0" in problems({**entry, "labels": {"org.edgeasr.contract": "0"}})[0][2]
