"""A peer's name and colour in a real Chromium: whatever a presence message carries (the server
refuses these, a page checks again), the page loads no URL from it and puts no markup from it
into the document."""

from __future__ import annotations

import pytest

from tests.web.pages import HOSTILE_NAME, Editors, relay_hostile_presence

pytestmark = pytest.mark.browser


def test_a_peers_url_colour_and_markup_name_reach_neither_a_style_nor_the_network(editors: Editors) -> None:
    page = editors.open()
    page.type("hello")
    page.wait_synced()
    requested = relay_hostile_presence(page, editors.server.http_url)
    page.wait("'mallory' in t.peers")
    drawn = page.page.evaluate(
        """() => {
            const layer = document.querySelector('.presence-layer');
            const caret = layer.querySelector('.peer-caret[data-client="mallory"]');
            const styles = [...layer.querySelectorAll('[style]')].map((e) => e.getAttribute('style'));
            return {
                name: caret.querySelector('.peer-name').textContent,
                images: layer.querySelectorAll('img').length,
                colour: getComputedStyle(caret).getPropertyValue('--peer-color').trim(),
                styles: styles.filter((s) => s.includes('url(')),
            };
        }"""
    )
    page.page.wait_for_timeout(300)  # time for any image or background request to go out
    assert drawn["name"] == HOSTILE_NAME
    assert drawn["images"] == 0
    assert drawn["styles"] == []
    assert drawn["colour"].startswith("#") and "url" not in drawn["colour"], drawn
    assert not [url for url in requested if "/seen" in url], requested
    assert page.errors == []
