// The user's own display name and colour: chosen once, kept in localStorage.

const KEY = "tandem.user";
const NAMES = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia",
  "Frances", "Niklaus", "Hedy", "Leslie", "Katherine", "John", "Sophie"];
const COLORS = ["#1e88e5", "#d81b60", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#e53935", "#6d4c41",
  "#3949ab", "#c0ca33"];

const pick = (list) => list[Math.floor(Math.random() * list.length)];

/** The stored {name, color}, or a fresh one (stored) on first use. */
export function loadUser(storage = globalThis.localStorage) {
  try {
    const stored = JSON.parse(storage.getItem(KEY));
    if (stored && typeof stored.name === "string" && /^#[0-9a-f]{6}$/i.test(stored.color)) return stored;
  } catch {
    // unreadable or unavailable storage: choose again
  }
  return saveUser({ name: pick(NAMES), color: pick(COLORS) }, storage);
}

/** Store `user`, trimmed to what the protocol accepts (a name of at most 64 characters). */
export function saveUser(user, storage = globalThis.localStorage) {
  const clean = { name: (user.name || "").trim().slice(0, 64) || pick(NAMES), color: user.color };
  try {
    storage.setItem(KEY, JSON.stringify(clean));
  } catch {
    // private browsing: the choice lasts this page only
  }
  return clean;
}
