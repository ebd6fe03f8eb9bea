// The update streams every benchmark replays: the same bytes go to edgegram (native and on
// workerd), python-telegram-bot and grammY.
//   count:   /count from 100 users, each in their private chat, round robin
//   profile: the demo's profile conversation, 100 users interleaved step by step
//   idle:    /show_data and a text no handler takes: updates that change nothing

export const USERS = 100;

/** The profile conversation of one user, one message per step (a full cycle ends in Done). */
export const PROFILE_STEPS = [
  "/start",
  "Age",
  null, // the age: a number per user and cycle
  "Favourite colour",
  "blue",
  "Something else...",
  "Favourite food",
  "pizza",
  "Done",
];

export function message(updateId, user, text, chat = user) {
  const command = text.startsWith("/") ? text.split(/\s/)[0] : null;
  return {
    update_id: updateId,
    message: {
      message_id: updateId,
      date: 1700000000,
      chat: chat < 0
        ? { id: chat, type: "supergroup", title: "bench" }
        : { id: chat, type: "private", first_name: `User ${user}` },
      from: { id: user, is_bot: false, first_name: `User ${user}` },
      text,
      ...(command ? { entities: [{ type: "bot_command", offset: 0, length: command.length }] } : {}),
    },
  };
}

/** The group chat some of the workerd stream's /count updates are sent in. */
export const GROUP = -1001234567890;

/**
 * `n` /count updates from USERS users (user ids 1001..), ids from `firstId`, each in the
 * user's private chat, or with `groupEvery` = k every k-th one in one shared group.
 */
export function countStream(n, { firstId = 1, users = USERS, groupEvery = 0 } = {}) {
  return Array.from({ length: n }, (_, i) => {
    const user = 1001 + (i % users);
    const chat = groupEvery && i % groupEvery === 0 ? GROUP : user;
    return message(firstId + i, user, "/count", chat);
  });
}

/** `cycles` full profile conversations per user, users interleaved step by step. */
export function profileStream(cycles, { firstId = 1, users = USERS } = {}) {
  const out = [];
  let id = firstId;
  for (let cycle = 0; cycle < cycles; cycle++) {
    for (const step of PROFILE_STEPS) {
      for (let u = 0; u < users; u++) {
        const user = 1001 + u;
        const text = step ?? String(10 + ((u + cycle) % 70));
        out.push(message(id++, user, text));
      }
    }
  }
  return out;
}

/** Updates that change nothing: /show_data and a text outside any conversation. */
export function idleStream(n, { firstId = 1, users = USERS } = {}) {
  return Array.from({ length: n }, (_, i) => {
    const user = 1001 + (i % users);
    return message(firstId + i, user, i % 2 ? "just saying hello" : "/show_data");
  });
}

/** JSON lines, one update per line. */
export function jsonLines(updates) {
  return updates.map((u) => JSON.stringify(u)).join("\n") + "\n";
}
