"""A visitor of the chat's pages with cookies, like one browser: it picks a nickname or logs in
(stage 7), and its chat sockets carry its session cookie."""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
import uuid

from shared_tests.servers import Endpoint, Page


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Keep a redirect as the answer: a 302 after a form is how Django says "done"."""

    def redirect_request(self, *args, **kwargs):
        return None


class Visitor:
    def __init__(self, server: Endpoint):
        self.server = server
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies),
            urllib.request.HTTPSHandler(context=server.client_ssl),
            _NoRedirects,
        )

    def _open(self, path: str, data: bytes | None = None) -> Page:
        url = self.server.http_url(path)
        # A browser says where a form comes from; over https Django's CSRF check needs it.
        headers = {"Origin": self.server.origin} if data is not None else {}
        request = urllib.request.Request(url, data=data, headers=headers)
        try:
            with self._opener.open(request, timeout=15) as response:
                return Page(
                    response.status, response.read().decode("utf-8", "replace"), url
                )
        except (
            urllib.error.HTTPError
        ) as error:  # 3xx, 4xx, 5xx: an answer, not a failure
            return Page(error.code, error.read().decode("utf-8", "replace"), url)

    def get(self, path: str) -> Page:
        return self._open(path)

    def post_form(self, path: str, fields: dict[str, str]) -> Page:
        """POST a form the way the page does, with the CSRF token Django gave on a GET."""
        page = self.get(path)
        assert page.status == 200, f"GET {path} answered HTTP {page.status}"
        token = self.cookie("csrftoken")
        assert token, (
            f"{path} set no csrftoken cookie (a form without {{% csrf_token %}}?)"
        )
        body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token})
        return self._open(path, body.encode())

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    @property
    def cookie_header(self) -> str:
        """The Cookie header a browser would send with this visitor's chat socket."""
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies)

    # -- who the visitor is -----------------------------------------------------------------
    def pick_nickname(self, nickname: str) -> Page:
        """Send the index page's nickname form (POST /chat/ with a "nickname" field)."""
        return self.post_form("/chat/", {"nickname": nickname})

    def log_in(self, username: str, password: str) -> Page:
        """Log in through the admin's login page (every project with the admin has it)."""
        return self.post_form(
            "/admin/login/",
            {"username": username, "password": password, "next": "/admin/"},
        )


def unique_name(prefix: str) -> str:
    """A name no other test uses (a nickname, a username)."""
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def named_visitor(server: Endpoint, nickname: str) -> Visitor:
    """A visitor who picked `nickname` on the index page (the form must take it)."""
    visitor = Visitor(server)
    page = visitor.pick_nickname(nickname)
    assert page.status in (302, 303), (
        f"the nickname form refused {nickname!r} (HTTP {page.status}): a POST to /chat/ "
        'with a "nickname" field should keep it in the session and redirect'
    )
    return visitor
