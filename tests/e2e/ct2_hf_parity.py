"""Run inside the transformers image: the converted Hugging Face Whisper and CTranslate2 on the same features.

argv: HF_DIR CT2_DIR AUDIO... ; prints one JSON object: the loading report and, per file, both
greedy transcripts. Both models get the exact same log-mel features (the Hugging Face feature
extractor's), so any difference is the converter's, not a front end's.
"""

import json
import sys

import ctranslate2
import numpy as np
import soundfile as sf
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

torch.set_num_threads(2)
hf_dir, ct2_dir, files = sys.argv[1], sys.argv[2], sys.argv[3:]
model, info = WhisperForConditionalGeneration.from_pretrained(hf_dir, torch_dtype=torch.float32,
                                                              output_loading_info=True)
proc = WhisperProcessor.from_pretrained(hf_dir)
ct2 = ctranslate2.models.Whisper(ct2_dir, device="cpu", compute_type="float32", intra_threads=2)
gen = model.generation_config
prompt = [gen.decoder_start_token_id, gen.no_timestamps_token_id]
rows = []
for path in files:
    audio, _sr = sf.read(path, dtype="float32")
    feats = proc(audio, sampling_rate=16000, return_tensors="np").input_features.astype(np.float32)
    hf_ids = model.generate(torch.from_numpy(feats), num_beams=1, do_sample=False)
    ct_ids = ct2.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)), [prompt], beam_size=1,
                          suppress_blank=True, suppress_tokens=[-1])[0].sequences_ids[0]
    rows.append({"file": path, "hf": proc.batch_decode(hf_ids, skip_special_tokens=True)[0].strip(),
                 "ct2": proc.decode(ct_ids, skip_special_tokens=True).strip()})
print(json.dumps({"loading": {k: [str(x) for x in v] for k, v in info.items()},
                  "n_params": sum(p.numel() for p in model.parameters()), "rows": rows}))
