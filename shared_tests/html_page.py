"""Read the parts of an HTML page the tests look at, with the standard library's parser."""

from __future__ import annotations

import json
from html.parser import HTMLParser


class _PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.scripts: dict[str, str] = {}
        self._script_id: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "script" and attributes.get("id"):
            self._script_id = attributes["id"]
            self.scripts[self._script_id] = ""

    def handle_data(self, data):
        if self._script_id is not None:
            self.scripts[self._script_id] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._script_id = None


def parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    return parser


def element_ids(html: str) -> set[str]:
    """Every id="..." on the page."""
    return parse(html).ids


def json_script(html: str, element_id: str):
    """The value Django's json_script filter put in <script id="element_id">, or None."""
    text = parse(html).scripts.get(element_id)
    return None if text is None else json.loads(text)
