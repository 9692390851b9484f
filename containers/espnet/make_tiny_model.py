"""Build a tiny random-initialised ESPnet2 ASR model offline, in ESPnet's own format, for the espnet backend.

No ESPnet model is reachable here (no model zoo, none on PyPI), so the espnet code paths are exercised on a model
made on the spot with ESPnet's own tools:
- the token list: English characters in ESPnet's layout (``<blank>``, ``<unk>``, the characters with ``<space>``,
  ``<sos/eos>`` last), written by ESPnet's ``espnet2.bin.tokenize_text`` from the letters;
- the architecture: the model section of the Conformer CTC/attention recipe the espnet wheel ships
  (``egs3/spgispeech/esp2_asr/conf/tuning/train_asr_conformer6_n_fft512_hop_length256.yaml``: Conformer encoder,
  Transformer decoder, hybrid CTC/attention, STFT + 80 log-mel frontend), shrunk to a few layers of width 64;
  utterance mean-variance normalisation replaces the recipe's global one (its statistics come from training data),
  and SpecAugment (training only) is left out;
- the config: every other setting is ESPnet's default (``ASRTask.get_parser()``), and the model is built by
  ``ASRTask.build_model``, seeded; ``config.yaml`` and ``model.pth`` (the state dict) are what an ESPnet training
  run writes and ``Speech2Text(asr_train_config, asr_model_file)`` loads.
The weights are random: transcripts are meaningless (WER is not a result) but deterministic, and decoding costs
what this architecture costs. Runs inside the espnet image:
    python make_tiny_model.py OUT_DIR
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

NAME = "tiny-espnet-random"
NOTE = ("random weights, made offline by make_tiny_model.py from ESPnet's Conformer CTC/attention recipe (shrunk): "
        "for pipeline and latency tests, not for accuracy")
RECIPE = "egs3/spgispeech/esp2_asr/conf/tuning/train_asr_conformer6_n_fft512_hop_length256.yaml"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"
#: The recipe's sizes (12 encoder blocks of 512, 6 decoder blocks) shrunk to a tiny model.
SHRINK = {
    "encoder_conf": {"output_size": 64, "attention_heads": 2, "linear_units": 128, "num_blocks": 2,
                     "cnn_module_kernel": 15},
    "decoder_conf": {"attention_heads": 2, "linear_units": 128, "num_blocks": 1},
}


def token_list(work: Path) -> list:
    """English characters as ESPnet's tokenize_text writes a character vocabulary (the symbols ESPnet recipes add:
    <blank> first, <unk> second, <sos/eos> last)."""
    text = work / "letters.txt"
    text.write_text(" ".join(LETTERS) + "\n", encoding="utf-8")
    out = work / "tokens.txt"
    subprocess.run([sys.executable, "-m", "espnet2.bin.tokenize_text", "--token_type", "char", "--input", str(text),
                    "--output", str(out), "--field", "1-", "--write_vocabulary", "true",
                    "--add_symbol", "<blank>:0", "--add_symbol", "<unk>:1", "--add_symbol", "<sos/eos>:-1"],
                   check=True, capture_output=True, text=True)
    return [line.strip() for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]


def recipe_model_section() -> dict:
    """The model section of the Conformer recipe the espnet wheel ships (hydra interpolations left as text: only
    the architecture is taken from it)."""
    import espnet2
    import yaml

    path = Path(espnet2.__file__).resolve().parent.parent / RECIPE
    return yaml.safe_load(path.read_text(encoding="utf-8"))["model"]


def build(out: Path) -> None:
    import torch
    from espnet2.tasks.asr import ASRTask
    from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    tokens = token_list(work)
    recipe = recipe_model_section()
    args = ASRTask.get_parser().parse_args([])
    args.token_list = tokens
    args.token_type = "char"
    args.bpemodel = None
    args.input_size = None
    args.frontend = recipe["frontend"]
    args.frontend_conf = dict(recipe["frontend_conf"])
    args.specaug, args.specaug_conf = None, {}
    args.normalize, args.normalize_conf = "utterance_mvn", {}
    args.encoder = recipe["encoder"]
    args.encoder_conf = {**recipe["encoder_conf"], **SHRINK["encoder_conf"]}
    args.decoder = recipe["decoder"]
    args.decoder_conf = {**recipe["decoder_conf"], **SHRINK["decoder_conf"]}
    args.model = "espnet"
    args.model_conf = {k: v for k, v in recipe["model_conf"].items() if k != "sym_space"}  # characters: <space>
    args.init = None
    torch.manual_seed(0)
    model = ASRTask.build_model(args)
    torch.save(model.state_dict(), out / "model.pth")
    config = {k: v for k, v in vars(args).items() if _plain(v)}
    with open(out / "config.yaml", "w", encoding="utf-8") as f:  # as ESPnet's training writes it: no YAML aliases
        yaml_no_alias_safe_dump(config, f, indent=4, sort_keys=False)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "edgeasr-model.json").write_text(json.dumps(
        {"name": NAME, "note": NOTE, "random_weights": True, "format": "espnet", "recipe": RECIPE, "n_params": n_params,
         "vocabulary": len(tokens)}, indent=2) + "\n")
    for p in work.iterdir():
        p.unlink()
    work.rmdir()


def _plain(value) -> bool:
    """A value yaml.safe_dump writes (ESPnet's config.yaml holds only these)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def check(out: Path) -> str:
    """Load it as any ESPnet model is loaded and decode a second of silence-level noise: it must run."""
    import numpy as np
    import torch
    from espnet2.bin.asr_inference import Speech2Text

    s2t = Speech2Text(asr_train_config=str(out / "config.yaml"), asr_model_file=str(out / "model.pth"),
                      beam_size=2, ctc_weight=0.3)
    noise = np.random.default_rng(0).normal(0, 0.01, 16000).astype(np.float32)
    with torch.inference_mode():
        return s2t(torch.from_numpy(noise))[0][0]


def main() -> int:
    out = Path(sys.argv[1]) / NAME
    build(out)
    text = check(out)
    print(f"wrote {out} (a check decode gave {text!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
