"""Which platform a shop runs, by its tables, and the draft mapping for it (pure).

Presets know a platform's real tables; anything else gets the generic heuristics.
"""

from __future__ import annotations

from collections.abc import Callable

from cdc_sync.init.draft import Draft
from cdc_sync.init.facts import SchemaFacts
from cdc_sync.init.generic import generic_draft

Preset = Callable[[SchemaFacts], Draft | None]


def presets() -> list[Preset]:
    """Each preset returns its draft when it recognises the shop, else None."""
    from cdc_sync.init.presets.magento import magento
    from cdc_sync.init.presets.opencart import opencart
    from cdc_sync.init.presets.prestashop import prestashop
    from cdc_sync.init.presets.woocommerce import woocommerce

    return [woocommerce, magento, prestashop, opencart]


def draft_for(facts: SchemaFacts) -> Draft:
    for preset in presets():
        draft = preset(facts)
        if draft is not None:
            return draft
    return generic_draft(facts)
