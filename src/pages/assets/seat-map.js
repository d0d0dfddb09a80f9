// The seat map's behaviour. Every action is a call to the public JSON API (the same one any
// client uses, documented at /openapi.json); an API error is shown as the API's own message.
// When the service runs its waiting queue (the page says so in `data-queue`), the script keeps
// the user's place in line and sends their turn's token with each hold and payment; when it
// does not, the script never calls the queue's routes.
"use strict";

(function () {
  const REFRESH_MS = 3000;
  // Well inside QUEUE_TOKEN_TTL_SECONDS, the most a waiting place may go unpolled.
  const LINE_POLL_MS = 2000;
  // Refusals of a hold or payment that are about the user's turn in line, not the request.
  const TURN_REFUSALS = ["queue_token_required", "not_admitted", "queue_token_expired"];
  const byId = (id) => document.getElementById(id);
  const map = byId("seat-map");
  const scheduleId = map ? Number(map.dataset.scheduleId) : null;
  const store = {
    get token() { return localStorage.getItem("concert.token"); },
    set token(value) { value ? localStorage.setItem("concert.token", value) : localStorage.removeItem("concert.token"); },
    get name() { return localStorage.getItem("concert.name"); },
    set name(value) { value ? localStorage.setItem("concert.name", value) : localStorage.removeItem("concert.name"); },
    get reservation() {
      try { return JSON.parse(localStorage.getItem("concert.reservation") || "null"); } catch (_) { return null; }
    },
    set reservation(value) {
      value ? localStorage.setItem("concert.reservation", JSON.stringify(value)) : localStorage.removeItem("concert.reservation");
    },
    // `{user, token}`: the queue token and a tag of the user it was issued to.
    get line() {
      try { return JSON.parse(localStorage.getItem("concert.queue") || "null"); } catch (_) { return null; }
    },
    set line(value) {
      value ? localStorage.setItem("concert.queue", JSON.stringify(value)) : localStorage.removeItem("concert.queue");
    },
  };

  class ApiError extends Error {
    constructor(message, status, code) { super(message); this.status = status; this.code = code; }
  }

  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign({ Accept: "application/json" }, extraHeaders);
    if (store.token) headers.Authorization = "Bearer " + store.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError("The service cannot be reached (" + error.message + ").", 0, "unreachable");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!response.ok) {
      const error = data && data.error ? data.error : {};
      throw new ApiError(error.message || "The service answered " + response.status + ".", response.status, error.code);
    }
    return data;
  }

  function say(text, kind) {
    const box = byId("message");
    box.textContent = text;
    box.className = "message " + (kind || "");
    box.hidden = !text;
  }

  // A 401 `unauthorized` says the user's token is gone; a 401 `queue_token_required` only that
  // the queue token was missing or not theirs.
  function userUnknown(error) {
    return error.status === 401 && error.code === "unauthorized";
  }

  function forgetUnknownUser(error) {
    signOut();
    say("That token is not known to the service (" + error.message + "). Create a user or paste another token.", "error");
  }

  // Runs an action, showing its error as the API's message. A refusal about the user's turn
  // also finds their place in line again.
  async function attempt(action) {
    try {
      return await action();
    } catch (error) {
      if (userUnknown(error) && store.token) {
        forgetUnknownUser(error);
      } else {
        say(error.message, "error");
        if (TURN_REFUSALS.includes(error.code)) findTurnAgain(error.code);
      }
      return undefined;
    }
  }

  // --- the account -------------------------------------------------------------------------

  async function showAccount() {
    const signedIn = Boolean(store.token);
    byId("signed-in").hidden = !signedIn;
    byId("signed-out").hidden = signedIn;
    if (!signedIn) {
      byId("who").textContent = "Not signed in.";
      return;
    }
    byId("who").textContent = store.name ? "Signed in as " + store.name + "." : "Signed in with a pasted token.";
    const points = await attempt(() => api("GET", "/points"));
    if (points) byId("balance").textContent = points.balance;
  }

  // The queue token stays kept under its user's tag: signing in again as them resumes the place,
  // and anyone else never sends it.
  function signOut() {
    store.token = null;
    store.name = null;
    store.reservation = null;
    stopLine();
    showAccount();
    showReservation();
    paintMine();
  }

  byId("create-user").addEventListener("click", async () => {
    const name = "Guest " + Math.floor(1000 + Math.random() * 9000);
    const user = await attempt(() => api("POST", "/users", { name }));
    if (!user) return;
    store.token = user.token;
    store.name = user.name;
    say("Created " + user.name + ". Their token, shown only once: " + user.token, "ok");
    await showAccount();
    refreshLine();
  });

  byId("use-token").addEventListener("click", async () => {
    const token = byId("token-input").value.trim();
    if (!token) return say("Paste a token first.", "error");
    store.token = token;
    store.name = null;
    byId("token-input").value = "";
    say("");
    await showAccount();
    refreshLine();
  });

  byId("sign-out").addEventListener("click", () => { signOut(); say(""); });

  byId("charge").addEventListener("click", async () => {
    const amount = Number(byId("charge-amount").value);
    const result = await attempt(() => api("POST", "/points/charge", { amount }));
    if (!result) return;
    byId("balance").textContent = result.balance;
    say("Charged " + amount + " points. Balance: " + result.balance + ".", "ok");
  });

  // --- the waiting line (only when the service runs its queue) -----------------------------

  const page = byId("seat-page");
  // `asked` numbers the questions about the line, so an answer overtaken by a later question
  // (or by signing out) is dropped rather than shown.
  const line = { on: Boolean(page) && page.dataset.queue === "on", place: null, problem: "", timer: null, asked: 0 };

  // A tag of the signed-in user's token (FNV-1a), kept beside their queue token instead of a
  // second copy of the token itself.
  function userTag() {
    let hash = 0x811c9dc5;
    for (const ch of store.token || "") hash = Math.imul(hash ^ ch.charCodeAt(0), 0x01000193) >>> 0;
    return hash.toString(16);
  }

  function keptTurnToken() {
    const kept = store.line;
    return kept && store.token && kept.user === userTag() ? kept.token : null;
  }

  function keepTurnToken(token) {
    store.line = token ? { user: userTag(), token } : null;
  }

  async function joinLine() {
    const place = await api("POST", "/queue/tokens");
    keepTurnToken(place.token);
    return place;
  }

  // The user's place: the kept token's, or a new one when the service knows no token of theirs.
  async function currentPlace() {
    const kept = keptTurnToken();
    if (!kept) return joinLine();
    try {
      return await api("GET", "/queue/tokens/" + encodeURIComponent(kept));
    } catch (error) {
      if (error.status === 404 && error.code === "not_found") return joinLine();
      throw error;
    }
  }

  // Shows the user's place and keeps polling while they wait or have their turn (polling is
  // also what keeps a waiting place). With `rejoin`, an ended turn is followed by a new place.
  async function refreshLine(rejoin) {
    clearTimeout(line.timer);
    if (!line.on || !store.token) return showLine();
    const asked = ++line.asked;
    let place = null;
    let failure = null;
    try {
      place = await currentPlace();
      if (rejoin === true && place.status === "expired") place = await joinLine();
    } catch (error) {
      failure = error;
    }
    if (asked !== line.asked) return;
    if (failure && userUnknown(failure)) return forgetUnknownUser(failure);
    if (failure && failure.code === "queue_disabled") {
      line.on = false; // the service was restarted without its queue
      return showLine();
    }
    if (place) line.place = place;
    line.problem = failure ? "The waiting line cannot be checked right now (" + failure.message + "). Trying again…" : "";
    showLine();
    if (!line.place || line.place.status !== "expired") line.timer = setTimeout(refreshLine, LINE_POLL_MS);
  }

  function stopLine() {
    clearTimeout(line.timer);
    line.asked += 1;
    line.place = null;
    line.problem = "";
    showLine();
  }

  // After a refusal about the turn: a token the service does not know is dropped and the line
  // joined afresh; an ended turn joins again; a user still waiting sees their place now.
  function findTurnAgain(code) {
    if (!line.on) return;
    if (code === "queue_token_required") keepTurnToken(null);
    refreshLine(code !== "not_admitted");
  }

  // The headers a hold or payment needs: none with the queue off, else the user's queue token,
  // joining the line again first when the last turn has ended. Null when there is no token to
  // send (the line could not be reached; the panel says why).
  async function turnHeaders() {
    if (!line.on) return {};
    if (!keptTurnToken() || !line.place || line.place.status === "expired") await refreshLine(true);
    const token = keptTurnToken();
    if (!token) {
      say(line.problem || "Join the waiting line first.", "error");
      return null;
    }
    return { "Queue-Token": token };
  }

  function clock(instant) {
    const at = new Date(instant);
    return [at.getHours(), at.getMinutes(), at.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  }

  function showLine() {
    const panel = byId("queue");
    if (!panel) return;
    panel.hidden = !line.on || !store.token;
    const place = line.place;
    const status = place ? place.status : "joining";
    const words = {
      waiting: () => ["Your place in line: " + place.position + " (" + (place.ahead > 0 ? place.ahead : "nobody") + " ahead of you)",
        "Keep this page open: it keeps your place, and you can hold a seat once it is your turn."],
      active: () => ["It's your turn until " + clock(place.active_until),
        "Hold a seat and pay before then; paying ends your turn."],
      expired: () => ["Your turn has ended.", "Holding a seat joins the line again."],
      joining: () => ["Joining the line…", ""],
    };
    const [text, hint] = (words[status] || words.joining)();
    const shown = byId("queue-place");
    shown.textContent = text;
    shown.dataset.status = status;
    shown.className = "queue-place " + status;
    byId("queue-hint").textContent = line.problem || hint;
    byId("queue-join").hidden = status !== "expired";
  }

  const rejoin = byId("queue-join");
  if (rejoin) rejoin.addEventListener("click", () => refreshLine(true));

  // --- the seats ---------------------------------------------------------------------------

  function paint(seat, status) {
    const button = document.querySelector('.seat[data-seat-id="' + seat.id + '"]');
    if (!button) return;
    button.dataset.status = status;
    button.classList.remove("available", "held", "sold");
    button.classList.add(status);
    button.disabled = status !== "available";
    button.title = "Seat " + button.dataset.seatNo + ": " + status;
    button.setAttribute("aria-label", "Seat " + button.dataset.seatNo + ", " + status);
  }

  function paintMine() {
    const mine = store.reservation;
    document.querySelectorAll(".seat").forEach((button) => {
      const isMine = Boolean(mine) && Number(button.dataset.seatId) === mine.seat_id &&
        (mine.status === "held" || mine.status === "confirmed");
      button.classList.toggle("mine", isMine);
    });
  }

  async function refreshSeats() {
    if (!scheduleId) return;
    try {
      const seats = await api("GET", "/schedules/" + scheduleId + "/seats");
      seats.forEach((seat) => paint(seat, seat.status));
      paintMine();
      byId("refreshed").textContent = "Refreshed " + new Date().toLocaleTimeString() + ", every 3 seconds.";
    } catch (error) {
      byId("refreshed").textContent = "Not refreshed: " + error.message;
    }
  }

  if (map) {
    byId("seats").addEventListener("click", async (event) => {
      const button = event.target.closest(".seat");
      if (!button || button.disabled) return;
      if (!store.token) return say("Create a demo user or paste a token first.", "error");
      const turn = await turnHeaders();
      if (!turn) return;
      const held = await attempt(() => api("POST", "/reservations", { seat_id: Number(button.dataset.seatId) }, turn));
      if (held) {
        store.reservation = held;
        say("Seat " + held.seat_no + " is held for you. Pay before the countdown runs out.", "ok");
        showReservation();
      }
      await refreshSeats();
    });
  }

  // --- the reservation ---------------------------------------------------------------------

  function showReservation() {
    const r = store.reservation;
    const panel = byId("reservation");
    panel.hidden = !r;
    if (!r) return;
    const words = {
      held: "Seat " + r.seat_no + " held, " + r.amount + " points to pay.",
      confirmed: "Seat " + r.seat_no + " is yours: paid " + r.amount + " points.",
      cancelled: "Seat " + r.seat_no + ": cancelled.",
      expired: "Seat " + r.seat_no + ": the hold ran out.",
    };
    byId("reservation-summary").textContent = "Reservation " + r.id + ". " + (words[r.status] || r.status);
    byId("pay").hidden = r.status !== "held";
    byId("cancel").hidden = !(r.status === "held" || r.status === "confirmed");
    byId("dismiss").hidden = r.status === "held" || r.status === "confirmed";
    tick();
  }

  function tick() {
    const r = store.reservation;
    const countdown = byId("countdown");
    if (!r || r.status !== "held") {
      countdown.textContent = "";
      return;
    }
    const left = Math.max(0, Math.round((Date.parse(r.held_until) - Date.now()) / 1000));
    const minutes = Math.floor(left / 60);
    const seconds = String(left % 60).padStart(2, "0");
    countdown.textContent = left > 0 ? "Held for " + minutes + ":" + seconds + " more." : "The hold has run out.";
  }

  byId("pay").addEventListener("click", async () => {
    const r = store.reservation;
    if (!r) return;
    const turn = await turnHeaders();
    if (!turn) return;
    const receipt = await attempt(() => api("POST", "/reservations/" + r.id + "/payment", undefined, turn));
    if (receipt) {
      store.reservation = Object.assign({}, r, { status: "confirmed", payment_id: receipt.payment_id });
      byId("balance").textContent = receipt.balance;
      say("Paid " + receipt.amount + " points for seat " + r.seat_no + ". Balance: " + receipt.balance + ".", "ok");
      refreshLine(); // the payment ended the turn
    } else {
      await refreshReservation();
    }
    showReservation();
    await refreshSeats();
  });

  byId("cancel").addEventListener("click", async () => {
    const r = store.reservation;
    if (!r) return;
    const cancelled = await attempt(() => api("POST", "/reservations/" + r.id + "/cancel"));
    if (cancelled) {
      store.reservation = Object.assign({}, r, { status: "cancelled" });
      byId("balance").textContent = cancelled.balance;
      const refund = cancelled.refunded ? " " + cancelled.refunded + " points refunded." : "";
      say("Reservation " + r.id + " cancelled." + refund, "ok");
    }
    showReservation();
    await refreshSeats();
  });

  byId("dismiss").addEventListener("click", () => { store.reservation = null; showReservation(); paintMine(); });

  // The reservation as the service has it now (a hold can run out, another tab can pay).
  async function refreshReservation() {
    const r = store.reservation;
    if (!r || !store.token) return;
    try {
      const now = await api("GET", "/reservations/" + r.id);
      store.reservation = Object.assign({}, r, now);
    } catch (error) {
      if (error.status === 404) store.reservation = null;
    }
    showReservation();
  }

  const picker = byId("schedule");
  if (picker) picker.addEventListener("change", () => byId("picker").submit());

  showAccount().then(() => refreshLine());
  refreshReservation();
  paintMine();
  setInterval(() => { refreshSeats(); if (store.reservation && store.reservation.status === "held") refreshReservation(); }, REFRESH_MS);
  setInterval(tick, 1000);
})();
