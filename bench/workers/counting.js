// Counts storage operations at the binding, for the "storage operations per update" table:
// a KV namespace's get/put/delete/list calls and a Durable Object storage's reads, writes and
// transactions, with the bytes written (key + value, UTF-8). The counts live in the isolate;
// GET /__ops answers them and starts over. Used by the bench workers and by the counting
// wrapper around edgegram's build (bench/run.mjs); never in the timed runs.
const encoder = new TextEncoder();
const size = (v) => (typeof v === "string" ? encoder.encode(v).length : v?.byteLength ?? encoder.encode(JSON.stringify(v)).length);

export const ops = {};
function bump(name, n = 1) {
  ops[name] = (ops[name] ?? 0) + n;
}

// Round trips: operations of one class (read or write) that overlap in time are one round
// trip of latency (KV's puts of one update go out together); a new one starts when an
// operation begins while none of its class is in flight.
// Listings (periodic sweeps: expired update ids, unpressed keyboards) count apart.
const inFlight = { read: 0, write: 0, list: 0 };
function roundTrip(kind, promise) {
  if (inFlight[kind]++ === 0) bump(`${kind}_round_trips`);
  const done = () => inFlight[kind]--;
  return Promise.resolve(promise).finally(done);
}

export function opsResponse() {
  const body = JSON.stringify(ops);
  for (const k of Object.keys(ops)) delete ops[k];
  return new Response(body, { headers: { "content-type": "application/json" } });
}

// The outbox's own writes (edgegram's queued calls: `obx:` keys), counted apart too, so that the
// tables can say what the outbox costs: its entry rides in the update's write; its delete,
// after the calls were sent, is a write of its own.
const isOutbox = (key) => typeof key === "string" && key.includes("obx:");
function outbox(kind, keys) {
  const n = keys.filter(isOutbox).length;
  if (n) bump(`outbox_${kind}`, n);
  return n === keys.length && n > 0;
}

/** A KV namespace that counts: one `get` of a list of keys is one (bulk) operation. */
export function countingKv(kv) {
  return {
    get(key, options) {
      bump("kv_get");
      bump("kv_get_keys", Array.isArray(key) ? key.length : 1);
      return roundTrip("read", kv.get(key, options));
    },
    getWithMetadata(key, options) {
      bump("kv_get");
      bump("kv_get_keys", Array.isArray(key) ? key.length : 1);
      return roundTrip("read", kv.getWithMetadata(key, options));
    },
    put(key, value, options) {
      bump("kv_put");
      outbox("puts", [key]);
      bump("bytes_written", size(key) + size(value));
      return roundTrip("write", kv.put(key, value, options));
    },
    delete(key) {
      bump("kv_delete");
      if (outbox("deletes", [key])) bump("outbox_delete_ops");
      return roundTrip("write", kv.delete(key));
    },
    list(options) {
      bump("kv_list");
      return roundTrip("list", kv.list(options));
    },
  };
}

/** A Durable Object state whose storage counts its calls. */
export function countingState(state) {
  const storage = countingStorage(state.storage);
  return new Proxy(state, {
    get(target, prop) {
      if (prop === "storage") return storage;
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function countingStorage(storage, inTransaction = false) {
  const tag = inTransaction ? "txn_" : "do_";
  // Inside a transaction, operations are part of the transaction's round trip.
  const trip = (kind, promise) => (inTransaction ? promise : roundTrip(kind, promise));
  const counted = {
    get(keys, options) {
      bump(`${tag}get`);
      bump(`${tag}get_keys`, Array.isArray(keys) ? keys.length : 1);
      return trip("read", storage.get(keys, options));
    },
    put(key, value, options) {
      bump(`${tag}put`);
      if (typeof key === "object") {
        for (const [k, v] of Object.entries(key)) bump("bytes_written", size(k) + size(v));
        bump(`${tag}put_keys`, Object.keys(key).length);
        outbox("puts", Object.keys(key));
      } else {
        outbox("puts", [key]);
        bump("bytes_written", size(key) + size(value));
        bump(`${tag}put_keys`);
      }
      return trip("write", storage.put(key, value, options));
    },
    delete(keys, options) {
      bump(`${tag}delete`);
      bump(`${tag}delete_keys`, Array.isArray(keys) ? keys.length : 1);
      if (outbox("deletes", Array.isArray(keys) ? keys : [keys]) && !inTransaction) bump("outbox_delete_ops");
      return trip("write", storage.delete(keys, options));
    },
    list(options) {
      bump(`${tag}list`);
      const listed = storage.list(options).then((entries) => {
        bump(`${tag}list_keys`, entries.size);
        return entries;
      });
      return trip("list", listed);
    },
    transaction(closure) {
      bump("do_transaction");
      return trip("write", storage.transaction((txn) => closure(countingStorage(txn, true))));
    },
  };
  return new Proxy(storage, {
    get(target, prop) {
      if (prop in counted) return counted[prop];
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
