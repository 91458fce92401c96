"""Verifiers importable by a worker process (module-level functions), for test_bounded_verifiers."""


def spins_forever(sample: dict, completion: str) -> float:
    while True:  # a verifier that never returns (a pathological parse, a regex gone exponential)
        pass


def length_is_reference(sample: dict, completion: str) -> float:
    return float(len(completion) == int(sample["reference"]))
