"""FaceSet: the one in-memory shape every dataset is turned into.

Images are float tensors [N, C, H, W] in [0, 1]; labels are integer identities 0..K-1; names[k]
is the name of identity k. The source record says where the data came from and under which
licence, and the load report says what was skipped and why, so the app can tell the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class DataSource:
    name: str
    citation: str
    licence: str
    offline: bool  # True when it needs no download (shipped or generated)
    url: str = ""


@dataclass
class LoadReport:
    """What a loader skipped or changed, in words a user can act on."""

    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    dropped_identities: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} file(s): " + ", ".join(
                f"{name} ({why})" for name, why in self.skipped[:5]
            ) + (" ..." if len(self.skipped) > 5 else ""))
        if self.dropped_identities:
            parts.append(f"dropped {len(self.dropped_identities)} identit(ies): " + ", ".join(
                f"{name} ({why})" for name, why in self.dropped_identities[:5]
            ))
        parts.extend(self.notes)
        return "; ".join(parts) if parts else "all files loaded"


@dataclass
class FaceSet:
    images: torch.Tensor  # [N, C, H, W] float32 in [0, 1]
    labels: torch.Tensor  # [N] int64, identity index into names
    names: list[str]
    source: DataSource
    report: LoadReport = field(default_factory=LoadReport)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    @property
    def num_identities(self) -> int:
        return len(self.names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, identities) -> FaceSet:
        """The images of the given identities, labels kept as they are (identity index)."""
        wanted = torch.as_tensor(list(identities), dtype=torch.long)
        mask = torch.isin(self.labels, wanted)
        return FaceSet(self.images[mask], self.labels[mask], self.names, self.source, self.report)
