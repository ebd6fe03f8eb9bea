"""python-telegram-bot's side of the native benchmark (bench/run.mjs runs it).

The same bot as edgegram's demo (src/demo.rs, ../shared/notes/demo-worker.md) for the
updates the streams carry: /count (bot, chat and user counters), the persistent `profile`
conversation and /show_data, on PTB's own Application with DictPersistence. The Bot API is
answered in process by a BaseRequest that replies as tests/worker/support/bot-api.mjs and edgegram's
RecordingBot do (message ids counting up per chat), so neither side pays for a network.

Each update is measured from its JSON bytes: json.loads + Update.de_json + process_update.

    python bench_ptb.py [--passes N] [--flush] name=updates.jsonl ...

--flush also calls Application.update_persistence() after every update, i.e. hands every
change to DictPersistence before the next update, as edgegram writes every update's changes
before it answers. Without it PTB writes on its timer (update_interval, 60 s by default,
which only runs while the Application is started; process_update alone never writes).

Prints one JSON document.
"""

import asyncio
import json
import sys
import time
import warnings

from telegram import ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.ext import (
    Application,
    CommandHandler,
    ConversationHandler,
    DictPersistence,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

warnings.filterwarnings("ignore")

TOKEN = "123456:BENCH-token"
CHOOSING, TYPING_REPLY, TYPING_CHOICE = range(3)
CATEGORIES = ["Age", "Favourite colour", "Number of siblings"]
SOMETHING_ELSE = "Something else..."
DONE = "Done"
KEYBOARD = ReplyKeyboardMarkup(
    [["Age", "Favourite colour"], ["Number of siblings", SOMETHING_ELSE], [DONE]],
    resize_keyboard=True,
)


class StandIn(BaseRequest):
    """The Bot API stand-in, in process: answers like tests/worker/support/bot-api.mjs."""

    def __init__(self):
        self.next_message_id = {}
        self.calls = 0

    @property
    def read_timeout(self):
        return None

    async def initialize(self):
        pass

    async def shutdown(self):
        pass

    async def do_request(self, url, method, request_data=None, *args, **kwargs):
        api_method = url.rsplit("/", 1)[1]
        params = request_data.parameters if request_data else {}
        self.calls += 1
        if api_method == "getMe":
            result = {"id": 1, "is_bot": True, "first_name": "edgegram demo",
                      "username": "edgegram_demo_bot"}
        elif api_method in ("sendMessage", "editMessageText"):
            chat_id = params["chat_id"]
            message_id = params.get("message_id")
            if message_id is None:
                message_id = self.next_message_id.get(chat_id, 0) + 1
                self.next_message_id[chat_id] = message_id
            result = {
                "message_id": message_id,
                "date": 1700000000,
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": 1, "is_bot": True, "first_name": "edgegram demo"},
                "text": params.get("text"),
            }
        else:
            result = True
        return 200, json.dumps({"ok": True, "result": result}).encode()


def bump(data):
    data["count"] = data.get("count", 0) + 1
    return data["count"]


async def count(update, context):
    bot = bump(context.bot_data)
    chat = bump(context.chat_data)
    user = bump(context.user_data)
    await update.effective_message.reply_text(f"bot: {bot}, chat: {chat}, user: {user}")


def facts(data):
    lines = [f"{k} - {v}" for k, v in data.items() if k != "choice"]
    return "\n".join(lines) if lines else "nothing yet"


async def start(update, context):
    if any(k != "choice" for k in context.user_data):
        text = f"Welcome back! You already told me:\n{facts(context.user_data)}\nWhat else?"
    else:
        text = "Hi! Tell me something about yourself."
    await update.message.reply_text(text, reply_markup=KEYBOARD)
    return CHOOSING


async def category_chosen(update, context):
    choice = update.message.text.lower()
    context.user_data["choice"] = choice
    await update.message.reply_text(f"Your {choice}? Go on.")
    return TYPING_REPLY


async def custom_category(update, context):
    await update.message.reply_text('Name the category first, for example "Favourite food".')
    return TYPING_CHOICE


async def value_received(update, context):
    value = update.message.text.lower()
    choice = context.user_data.pop("choice", None)
    if choice is not None:
        context.user_data[choice] = value
    text = f"Noted. What I know about you:\n{facts(context.user_data)}\nTell me more, or press Done."
    await update.message.reply_text(text, reply_markup=KEYBOARD)
    return CHOOSING


async def done(update, context):
    context.user_data.pop("choice", None)
    text = f"I learned:\n{facts(context.user_data)}\nUntil next time!"
    await update.message.reply_text(text, reply_markup=ReplyKeyboardRemove())
    return ConversationHandler.END


async def show_data(update, context):
    await update.message.reply_text(f"What I know about you:\n{facts(context.user_data)}")


def build():
    free_text = filters.TEXT & ~filters.COMMAND & ~filters.Text([DONE])
    conversation = ConversationHandler(
        entry_points=[CommandHandler("start", start)],
        states={
            CHOOSING: [
                MessageHandler(filters.Text(CATEGORIES), category_chosen),
                MessageHandler(filters.Text([SOMETHING_ELSE]), custom_category),
            ],
            TYPING_CHOICE: [MessageHandler(free_text, category_chosen)],
            TYPING_REPLY: [MessageHandler(free_text, value_received)],
        },
        fallbacks=[MessageHandler(filters.Text([DONE]), done)],
        name="profile",
        persistent=True,
    )
    request = StandIn()
    app = (
        Application.builder()
        .token(TOKEN)
        .request(request)
        .get_updates_request(StandIn())
        .persistence(DictPersistence())
        .build()
    )
    app.add_handler(conversation)
    app.add_handler(CommandHandler("show_data", show_data))
    app.add_handler(CommandHandler("count", count))
    return app, request


async def timed_pass(lines, flush):
    app, request = build()
    await app.initialize()
    request.calls = 0
    started = time.perf_counter()
    for line in lines:
        update = Update.de_json(json.loads(line), app.bot)
        await app.process_update(update)
        if flush:
            await app.update_persistence()
    seconds = time.perf_counter() - started
    await app.update_persistence()
    bot_data = json.loads(app.persistence.bot_data_json)
    await app.shutdown()
    return seconds, request.calls, bot_data


async def main(argv):
    passes, flush, streams = 3, False, []
    args = iter(argv)
    for arg in args:
        if arg == "--passes":
            passes = int(next(args))
        elif arg == "--flush":
            flush = True
        else:
            name, path = arg.split("=", 1)
            with open(path, "rb") as f:
                streams.append((name, [line for line in f.read().split(b"\n") if line]))
    results = []
    for name, lines in streams:
        await timed_pass(lines[: len(lines) // 10 or 1], flush)  # warm up imports and caches
        seconds, replies, bot_data = [], 0, None
        for _ in range(passes):
            s, replies, bot_data = await timed_pass(lines, flush)
            seconds.append(s)
        results.append({"name": name, "updates": len(lines), "seconds": seconds,
                        "replies": replies, "bot_data": bot_data})
    import telegram
    print(json.dumps({"ptb": telegram.__version__, "flush": flush,
                      "python": sys.version.split()[0], "streams": results}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
