"""The data side shared by the two-view joint-embedding methods (SimCLR, BYOL, SimSiam): two random resized crops of
a region larger than the patch, with intensity changes (:mod:`sslseg.ssl.pair_views`). A method's ``Options`` gives
``region_scale`` (region edge / patch edge) and ``min_crop`` (smallest crop edge / region edge)."""

from __future__ import annotations

from dataclasses import dataclass

from sslseg.ssl.base import SSLMethod
from sslseg.ssl.pair_views import PairViewSettings, region_edge, two_views


@dataclass(frozen=True)
class TwoViewOptions:
    """The views' options every two-view method has."""

    region_scale: float = 1.5
    min_crop: float = 0.5


class TwoViewMethod(SSLMethod):
    """An :class:`SSLMethod` whose views are ``view1`` and ``view2``, each (1, S, S, S)."""

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.views = PairViewSettings(self.opts.region_scale, self.opts.min_crop)

    def region_size(self, patch_size: int) -> int:
        return region_edge(patch_size, self.views)

    def make_views(self, region, random_state) -> dict:
        return two_views(region, self.views, random_state)
