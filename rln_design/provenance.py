"""Where an artifact came from, as one frozen record: code, configuration, seed, hardware, time.

Every artifact the package writes (dataset, checkpoint, shipped surrogate, design report, study
output) stores one :class:`Provenance`, made once by :meth:`Provenance.capture` where the work starts
and serialised only by :meth:`Provenance.to_dict` / :meth:`Provenance.from_dict`.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json

from rln_design._hardware import cpu_summary, describe_device
from rln_design._version import __version__, revision

__all__ = ["Provenance", "package_versions"]

_PACKAGES = ("torch", "numpy", "scipy", "h5py", "botorch")


def package_versions(names=_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape numerical results (absent ones left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


@dataclasses.dataclass(frozen=True)
class Provenance:
    """The code, configuration, seed and hardware that made an artifact.

    Args:
        version: rln-design release (``rln_design.__version__``).
        revision: git commit of the source tree (``+dirty`` with local changes), ``None`` if unknown.
        config: the run's configuration as a JSON-safe dict (what to pass to rebuild the run).
        seed: root seed of every random draw of the run, ``None`` if it drew nothing at random.
        hardware: the machine in words, e.g. ``"AMD EPYC, 2 logical CPUs, 1 process"``.
        packages: versions of the numerical packages, ``{"torch": "2.13.0", ...}``.
        created: UTC time stamp (ISO 8601, seconds).
    """

    version: str
    revision: str | None = None
    config: dict = dataclasses.field(default_factory=dict, hash=False)
    seed: int | None = None
    hardware: str = ""
    packages: dict = dataclasses.field(default_factory=dict, hash=False)
    created: str = ""

    @classmethod
    def capture(cls, config: dict | None = None, seed: int | None = None, device=None,
                processes: int = 1) -> Provenance:
        """The provenance of a run starting now on this machine.

        Args:
            config: JSON-safe run configuration.
            seed: the run's root seed.
            device: ``torch.device`` (or name) the run computes on; ``None`` = this machine's CPU.
            processes: data-parallel processes of the run.
        """
        hardware = cpu_summary() if device is None else describe_device(device, processes=processes)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return cls(version=__version__, revision=revision(), config=dict(config or {}),
                   seed=None if seed is None else int(seed), hardware=hardware,
                   packages=package_versions(), created=now)

    def to_dict(self) -> dict:
        """JSON-safe dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Provenance:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, a JSON-string ``config`` decoded."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if isinstance(d.get("config"), str):
            d["config"] = json.loads(d["config"]) if d["config"] else {}
        d.setdefault("version", "unknown")
        return cls(**d)
