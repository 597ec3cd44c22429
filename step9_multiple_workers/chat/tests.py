# chat/tests.py
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.routing import get_default_application
from channels.testing import ChannelsLiveServerTestCase, WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import TransactionTestCase, override_settings
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

# Beyond the tutorial: its 2 s waits fail on a busy machine; a wait ends as soon as the page is ready.
WAIT_SECONDS = 10


async def receive_chat(communicator):
    """The next frame that is not a list of who is here (stage 8 sends those too)."""
    while True:
        frame = await communicator.receive_json_from(timeout=WAIT_SECONDS)
        if "presence" not in frame:
            return frame


async def hears_no_chat(communicator, seconds=1):
    """Whether no frame other than a list of who is here comes within `seconds`."""
    while not await communicator.receive_nothing(timeout=seconds):
        if "presence" not in await communicator.receive_json_from():
            return False
    return True


class ChatTests(ChannelsLiveServerTestCase):
    serve_static = True  # emulate StaticLiveServerTestCase

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            # NOTE: Requires "chromedriver" binary to be installed in $PATH
            options = webdriver.ChromeOptions()
            # Beyond the tutorial: no window, so the tests also run where there is no screen.
            options.add_argument("--headless=new")
            cls.driver = webdriver.Chrome(options=options)
        except Exception:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        super().tearDownClass()

    def test_when_chat_message_posted_then_seen_by_everyone_in_same_room(self):
        try:
            self._enter_chat_room("room_1")

            self._open_new_window()
            self._enter_chat_room("room_1")

            self._switch_to_window(0)
            self._post_message("hello")
            WebDriverWait(self.driver, WAIT_SECONDS).until(
                lambda _: "hello" in self._chat_log_value,
                "Message was not received by window 1 from window 1",
            )
            self._switch_to_window(1)
            WebDriverWait(self.driver, WAIT_SECONDS).until(
                lambda _: "hello" in self._chat_log_value,
                "Message was not received by window 2 from window 1",
            )
        finally:
            self._close_all_new_windows()

    def test_when_chat_message_posted_then_not_seen_by_anyone_in_different_room(self):
        try:
            self._enter_chat_room("room_1")

            self._open_new_window()
            self._enter_chat_room("room_2")

            self._switch_to_window(0)
            self._post_message("hello")
            WebDriverWait(self.driver, WAIT_SECONDS).until(
                lambda _: "hello" in self._chat_log_value,
                "Message was not received by window 1 from window 1",
            )

            self._switch_to_window(1)
            self._post_message("world")
            WebDriverWait(self.driver, WAIT_SECONDS).until(
                lambda _: "world" in self._chat_log_value,
                "Message was not received by window 2 from window 2",
            )
            self.assertTrue(
                "hello" not in self._chat_log_value,
                "Message was improperly received by window 2 from window 1",
            )
        finally:
            self._close_all_new_windows()

    # Beyond the tutorial: with the in-memory layer the two tests above still pass, so check
    # that a consumer in another process (this test's, not the live server's) hears the room.
    def test_when_chat_message_posted_then_seen_by_another_server_process(self):
        async_to_sync(self._hear_room_from_this_process)()

    async def _hear_room_from_this_process(self):
        communicator = WebsocketCommunicator(
            get_default_application(),
            "/ws/chat/room_1/",
            headers=[(b"origin", self.live_server_url.encode())],
        )
        connected, _ = await communicator.connect(timeout=WAIT_SECONDS)
        self.assertTrue(connected, "This process could not join room_1")
        try:
            await sync_to_async(self._enter_chat_room)("room_1")
            await sync_to_async(self._post_message)("across processes")
            reply = await receive_chat(communicator)
            self.assertEqual(
                reply["message"],
                "across processes",
                "Message was not received by a consumer in another process",
            )
        finally:
            await communicator.disconnect()

    # === Utility ===

    def _enter_chat_room(self, room_name):
        self.driver.get(self.live_server_url + "/chat/")
        ActionChains(self.driver).send_keys(room_name, Keys.ENTER).perform()
        WebDriverWait(self.driver, WAIT_SECONDS).until(
            lambda _: room_name in self.driver.current_url
        )
        # Beyond the tutorial: also wait for the page's socket; a message sent earlier is lost.
        WebDriverWait(self.driver, WAIT_SECONDS).until(
            lambda _: self.driver.execute_script("return chatSocket.readyState") == 1
        )

    def _open_new_window(self):
        self.driver.execute_script('window.open("about:blank", "_blank");')
        self._switch_to_window(-1)

    def _close_all_new_windows(self):
        while len(self.driver.window_handles) > 1:
            self._switch_to_window(-1)
            self.driver.execute_script("window.close();")
        if len(self.driver.window_handles) == 1:
            self._switch_to_window(0)

    def _switch_to_window(self, window_index):
        self.driver.switch_to.window(self.driver.window_handles[window_index])

    def _post_message(self, message):
        ActionChains(self.driver).send_keys(message, Keys.ENTER).perform()

    @property
    def _chat_log_value(self):
        return self.driver.find_element(
            by=By.CSS_SELECTOR, value="#chat-log"
        ).get_property("value")


# Beyond the tutorial: fast tests of the consumer alone, with no browser and no Redis
# (Channels' in-memory layer stands in for it).
@override_settings(
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
)
class ChatConsumerTests(TransactionTestCase):  # the consumer stores messages
    async def _join(self, room_name, origin=b"http://testserver", cookie=b""):
        communicator = WebsocketCommunicator(
            get_default_application(),
            f"/ws/chat/{room_name}/",
            headers=[(b"origin", origin), (b"cookie", cookie)],
        )
        connected, _ = await communicator.connect(timeout=WAIT_SECONDS)
        self.assertTrue(connected, f"Could not join {room_name}")
        return communicator

    async def test_message_is_sent_to_everyone_in_the_room(self):
        alice = await self._join("lobby")
        bob = await self._join("lobby")
        await alice.send_json_to({"message": "hello"})
        for member in (alice, bob):
            reply = await receive_chat(member)
            self.assertEqual(reply["message"], "hello")
        await alice.disconnect()
        await bob.disconnect()

    async def test_other_rooms_hear_nothing(self):
        alice = await self._join("lobby")
        carol = await self._join("kitchen")
        await alice.send_json_to({"message": "hello"})
        reply = await receive_chat(alice)
        self.assertEqual(reply["message"], "hello")
        self.assertTrue(await hears_no_chat(carol), "kitchen heard the lobby")
        await alice.disconnect()
        await carol.disconnect()

    async def test_bad_frame_is_answered_with_an_error(self):
        alice = await self._join("lobby")
        await alice.send_to(text_data="this is not JSON")
        self.assertIn("error", await receive_chat(alice))
        await alice.send_json_to({"message": "still here"})
        reply = await receive_chat(alice)
        self.assertEqual(reply["message"], "still here")
        await alice.disconnect()

    async def test_page_from_another_site_is_refused(self):
        communicator = WebsocketCommunicator(
            get_default_application(),
            "/ws/chat/lobby/",
            headers=[(b"origin", b"http://evil.example")],
        )
        connected, _ = await communicator.connect(timeout=WAIT_SECONDS)
        self.assertFalse(connected, "A page from another site could join the chat")

    async def test_leaving_the_room_leaves_its_group(self):
        await get_channel_layer().flush()
        alice = await self._join("lobby")
        await alice.disconnect()
        self.assertEqual(get_channel_layer().groups, {}, "A closed socket stayed in a group")

    # Stage 7: names and history.
    async def _join_as(self, nickname, room_name):
        response = await self.async_client.post("/chat/", {"nickname": nickname})
        self.assertEqual(response.status_code, 302, f"The nickname {nickname} was refused")
        return await self._join(room_name, cookie=self._session_cookie())

    def _session_cookie(self):
        return f"sessionid={self.async_client.cookies['sessionid'].value}".encode()

    async def test_the_author_is_decided_by_the_server(self):
        alice = await self._join_as("alice", "lobby")
        await alice.send_json_to({"message": "hi", "author": "the admin"})
        reply = await receive_chat(alice)
        self.assertEqual((reply["author"], reply["message"]), ("alice", "hi"))
        await alice.disconnect()

    async def test_a_newcomer_gets_the_rooms_history_oldest_first(self):
        alice = await self._join("lobby")
        for text in ("one", "two"):
            await alice.send_json_to({"message": text})
            await receive_chat(alice)
        elsewhere = await self._join("kitchen")
        await elsewhere.send_json_to({"message": "not for the lobby"})
        await receive_chat(elsewhere)
        bob = await self._join("lobby")
        history = [await receive_chat(bob) for _ in range(2)]
        self.assertEqual([frame["message"] for frame in history], ["one", "two"])
        self.assertTrue(await hears_no_chat(bob), "bob got more history")
        for member in (alice, elsewhere, bob):
            await member.disconnect()

    def test_a_nickname_that_is_a_username_is_refused(self):
        get_user_model().objects.create_user("alice", password="a long password")
        response = self.client.post("/chat/", {"nickname": "Alice"})
        self.assertEqual(response.status_code, 400)
        self.assertNotIn("nickname", self.client.session)

    # Stage 8: who is here.
    async def test_the_room_lists_each_name_once(self):
        first_tab = await self._join_as("alice", "lobby")
        second_tab = await self._join("lobby", cookie=self._session_cookie())
        frame = await second_tab.receive_json_from(timeout=WAIT_SECONDS)
        while "presence" not in frame:
            frame = await second_tab.receive_json_from(timeout=WAIT_SECONDS)
        self.assertEqual(frame["presence"], ["alice"])
        await first_tab.disconnect()
        await second_tab.disconnect()
