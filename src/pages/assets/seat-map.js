// The seat map's behaviour. Every action is a call to the public JSON API (the same one any
// client uses, documented at /openapi.json); an API error is shown as the API's own message.
"use strict";

(function () {
  const REFRESH_MS = 3000;
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
  };

  class ApiError extends Error {
    constructor(message, status, code) { super(message); this.status = status; this.code = code; }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
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

  // Runs an action, showing its error as the API's message; a 401 means the token is gone.
  async function attempt(action) {
    try {
      return await action();
    } catch (error) {
      if (error.status === 401 && store.token) {
        signOut();
        say("That token is not known to the service (" + error.message + "). Create a user or paste another token.", "error");
      } else {
        say(error.message, "error");
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

  function signOut() {
    store.token = null;
    store.name = null;
    store.reservation = null;
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
    showAccount();
  });

  byId("use-token").addEventListener("click", async () => {
    const token = byId("token-input").value.trim();
    if (!token) return say("Paste a token first.", "error");
    store.token = token;
    store.name = null;
    byId("token-input").value = "";
    say("");
    await showAccount();
  });

  byId("sign-out").addEventListener("click", () => { signOut(); say(""); });

  byId("charge").addEventListener("click", async () => {
    const amount = Number(byId("charge-amount").value);
    const result = await attempt(() => api("POST", "/points/charge", { amount }));
    if (!result) return;
    byId("balance").textContent = result.balance;
    say("Charged " + amount + " points. Balance: " + result.balance + ".", "ok");
  });

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
      const held = await attempt(() => api("POST", "/reservations", { seat_id: Number(button.dataset.seatId) }));
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
    const receipt = await attempt(() => api("POST", "/reservations/" + r.id + "/payment"));
    if (receipt) {
      store.reservation = Object.assign({}, r, { status: "confirmed", payment_id: receipt.payment_id });
      byId("balance").textContent = receipt.balance;
      say("Paid " + receipt.amount + " points for seat " + r.seat_no + ". Balance: " + receipt.balance + ".", "ok");
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

  showAccount();
  refreshReservation();
  paintMine();
  setInterval(() => { refreshSeats(); if (store.reservation && store.reservation.status === "held") refreshReservation(); }, REFRESH_MS);
  setInterval(tick, 1000);
})();
