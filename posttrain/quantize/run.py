"""`posttrain quantize`: check the method's arguments against the model before loading weights,
quantise (quantize/operators.py), write a float model directory with the simulated weights and a
quantization.json saying how they were made."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from posttrain.errors import UserError

METHODS = ("rtn", "nf4", "int8", "gptq", "awq")
NF4_BLOCKS = (64, 128, 256, 512, 1024, 2048, 4096)  # bitsandbytes' supported block sizes
UNAVAILABLE = {
    "gptq": "gptq is not available: no maintained GPTQ library installs beside torch 2.13 (CPU) "
    "here (gptqmodel needs torch 2.14 and CUDA, llm-compressor pins transformers 5.17); use rtn",
    "awq": "awq is not available: AutoAWQ is archived and needs CUDA kernels, llm-compressor pins "
    "transformers 5.17; use rtn",
}


def check_arguments(method: str, bits: int, group_size: int | None) -> None:
    """One-line errors for a method/bits/group-size combination, before any weights are read."""
    from posttrain.quantize.operators import RTN_BITS

    if method in UNAVAILABLE:
        raise UserError(UNAVAILABLE[method])
    if method in ("nf4", "int8") and importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(f"--method {method} needs bitsandbytes: pip install 'posttrain[quantize]'")
    if method == "rtn" and bits not in RTN_BITS:
        raise UserError(f"--bits {bits}: rtn quantises to 2..8 bits")
    if method == "nf4" and bits != 4:
        raise UserError(f"--bits {bits}: nf4 is a 4-bit format (use --bits 4, or rtn for other widths)")
    if method == "int8" and bits != 8:
        raise UserError(f"--bits {bits}: int8 is an 8-bit format (use --bits 8, or rtn for other widths)")
    if group_size is not None and group_size < 1:
        raise UserError(f"--group-size {group_size}: must be >= 1")
    if method == "int8" and group_size is not None:
        raise UserError("--group-size: int8 scales whole rows (row-wise absmax); leave it out")
    if method == "nf4" and group_size is not None and group_size not in NF4_BLOCKS:
        raise UserError(f"--group-size {group_size}: bitsandbytes nf4 blocks are one of {list(NF4_BLOCKS)}")


def quantize_model(
    model: str, out: str, method: str, bits: int, group_size: int | None, overwrite: bool = False
) -> Path:
    from posttrain.checkpoint.output_dir import check_output_dir, write_output_dir
    from posttrain.checkpoint.weights import model_dir_writer, read_config, read_state_dict
    from posttrain.model.paths import resolve_model_path
    from posttrain.quantize.operators import quantize_state

    path = resolve_model_path(model)
    check_arguments(method, bits, group_size)
    check_output_dir(out, "quantize", [path], overwrite)  # before the weights are read
    state = quantize_state(read_state_dict(path), method, bits, group_size)
    record = {
        "method": method,
        "bits": bits,
        "group_size": group_size,
        "source": str(path),
        "simulated": True,
        "note": "weights are the dequantised values, stored as floats",
    }
    dtype = read_config(path).get("dtype") or "float32"
    writer = model_dir_writer(
        state,
        path,
        dtype if dtype in ("float32", "bfloat16", "float16") else "float32",
        extra_files={"quantization.json": json.dumps(record, indent=2) + "\n"},
    )
    return write_output_dir(out, "quantize", [path], overwrite, writer)
