"""Files readable as the umask allows: some writers (transformers' safetensors save, temp files)
create them 0600, so another user cannot load a shared model and the error then wrongly says
"No such file"."""

import os
from pathlib import Path


def apply_umask(directory: Path) -> None:
    """Give every file under `directory` 0666 and every folder 0777, less the umask (0644/0755
    under umask 022): what a plain open() or mkdir would have made."""
    mask = os.umask(0)
    os.umask(mask)
    for entry in Path(directory).rglob("*"):
        os.chmod(entry, (0o777 if entry.is_dir() else 0o666) & ~mask)
