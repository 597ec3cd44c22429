"""The lesson of stage 5: the consumer becomes async (it is sync at stages 3 and 4)."""

import pytest


@pytest.mark.behaviour("consumer_style")
def test_consumer_is_sync_or_async_as_the_stage_teaches(stage_project, expect):
    """Every consumer routed from ASGI_APPLICATION is a sync or an async consumer as expected."""
    consumers = stage_project.facts.get("consumers")
    assert consumers, (
        'no consumer is routed from ASGI_APPLICATION\'s "websocket" router'
    )
    wrong = {name: kind for name, kind in consumers.items() if kind != expect}
    assert not wrong, ", ".join(
        f"{name} is a {kind} consumer; this stage's consumer should be {expect}"
        for name, kind in wrong.items()
    )
