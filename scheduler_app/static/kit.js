/*
 * scheduler-app front-end kit: the helpers the widget, the manage page and the
 * admin page share. A classic script that defines window.SchedulerKit; the
 * pages load it before their own script, and widget.js loads it from the
 * origin it came from (see widget.js), so it also works on other origins.
 *
 * - time: Intl formats, ranges, the rep's clock;
 * - the API: fetch with a timeout that resolves {status, body, headers, etag}
 *   for any HTTP answer, the `detail` of a refusal, FastAPI's 422 items;
 * - Idempotency-Key: a random UUID per attempt, the same one while the same
 *   attempt is retried after a network error or a 5xx;
 * - what the page says: status messages with a tone, errors by a field;
 * - DOM: el, clear, a download of a Blob.
 *
 * No dependencies, no eval, no inline style: it lives under the pages' strict
 * Content-Security-Policy.
 */
(function () {
  "use strict";

  if (window.SchedulerKit) return;

  var TIMEOUT_MS = 15000;

  // -- DOM ---------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  /* Offer ``blob`` as the file ``name`` (a hidden link clicked inside ``parent``). */
  function download(blob, name, parent, keepMs) {
    var url = URL.createObjectURL(blob);
    var link = el("a", "sw-visually-hidden", name);
    link.href = url;
    link.download = name;
    parent.appendChild(link);
    link.click();
    parent.removeChild(link);
    setTimeout(function () { URL.revokeObjectURL(url); }, keepMs);
  }

  // -- time ----------------------------------------------------------------------

  // The browser's own zone (the visitor's).
  var visitorZone = new Intl.DateTimeFormat().resolvedOptions().timeZone;

  /* ``zone`` if the browser knows it, else "UTC". */
  function zoneOrUtc(zone) {
    try {
      new Intl.DateTimeFormat(undefined, { timeZone: zone });
      return zone;
    } catch (e) {
      return "UTC";
    }
  }

  /* The formats a page lists times with, in ``zone`` (undefined: the browser's). */
  function formats(zone) {
    return {
      dayKey: new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit", timeZone: zone }),
      dayLabel: new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", timeZone: zone }),
      dateLabel: new Intl.DateTimeFormat(undefined, {
        weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: zone
      }),
      timeLabel: new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", timeZone: zone })
    };
  }

  function range(format, start, end) {
    return typeof format.formatRange === "function"
      ? format.formatRange(start, end)
      : format.format(start) + " \u2013 " + format.format(end);
  }

  /* A zone's name as people read it: "America/New_York" -> "New York". */
  function zoneName(zone) {
    return zone.split("/").pop().replace(/_/g, " ");
  }

  var ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

  /* The rep's clock: a named zone if the page gave one, else the API's offsets. */
  function RepClock(zone) {
    this.zone = null;
    if (zone) {
      try {
        this.format = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", timeZone: zone });
        this.zone = zone;
        this.name = zoneName(zone);
      } catch (e) {
        this.zone = null; // an unknown zone: fall back to the offsets
      }
    }
    if (!this.zone) {
      this.format = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", timeZone: "UTC" });
      this.name = null;
    }
  }

  // The wall-clock time written in the timestamp, as a Date to format in UTC.
  RepClock.prototype.wall = function (iso) {
    var m = ISO.exec(iso);
    if (!m) return new Date(iso);
    return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]));
  };

  RepClock.prototype.time = function (iso) {
    return this.format.format(this.zone ? new Date(iso) : this.wall(iso));
  };

  RepClock.prototype.range = function (startIso, endIso) {
    return this.zone
      ? range(this.format, new Date(startIso), new Date(endIso))
      : range(this.format, this.wall(startIso), this.wall(endIso));
  };

  RepClock.prototype.label = function (iso) {
    if (this.name) return this.name;
    var m = ISO.exec(iso);
    var offset = m ? m[6] : "";
    return offset === "Z" || offset === "+00:00" ? "UTC" : "UTC" + offset.replace("-", "\u2212");
  };

  // -- the API -------------------------------------------------------------------

  /* fetch ``url`` with a timeout; resolves {status, body, headers, etag} for any
     HTTP answer (``body`` the JSON, or null; a Blob when ``options.blob`` and
     the answer is a 2xx), rejects when there is none (network down, refused by
     CORS, timed out). ``options``: payload (sent as JSON), token (Bearer), key
     (Idempotency-Key), headers, accept, blob, mode, credentials. */
  function request(method, url, options) {
    options = options || {};
    var init = {
      method: method,
      credentials: options.credentials || "omit",
      cache: "no-store",
      headers: { Accept: options.accept || "application/json" }
    };
    if (options.mode) init.mode = options.mode;
    if (options.token) init.headers.Authorization = "Bearer " + options.token;
    if (options.key) init.headers["Idempotency-Key"] = options.key;
    Object.keys(options.headers || {}).forEach(function (name) { init.headers[name] = options.headers[name]; });
    if (options.payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.payload);
    }
    var timer = null;
    if (typeof AbortController === "function") {
      var controller = new AbortController();
      init.signal = controller.signal;
      timer = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
    }
    return fetch(url, init).then(function (response) {
      var read = options.blob && response.ok ? response.blob() : response.json().catch(function () { return null; });
      return read.then(function (body) {
        if (timer) clearTimeout(timer);
        return { status: response.status, body: body, headers: response.headers, etag: response.headers.get("ETag"),
                 retryAfter: response.headers.get("Retry-After") };
      });
    }, function (error) {
      if (timer) clearTimeout(timer);
      throw error;
    });
  }

  /* A 429's wait: ``show(left)`` now and each second until ``left`` (seconds of
     Retry-After still to run) is 0; the page never sends again by itself.
     Returns a function that stops it early. */
  function countdown(seconds, show) {
    var until = Date.now() + seconds * 1000;
    var timer = null;
    function tick() {
      var left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      show(left);
      if (left === 0 && timer !== null) clearInterval(timer);
    }
    timer = setInterval(tick, 1000);
    tick();
    return function () { clearInterval(timer); };
  }

  function tooManyMessage(seconds) {
    return "Too many attempts from your connection. You can try again in " + seconds +
      (seconds === 1 ? " second." : " seconds.");
  }

  var TRY_AGAIN_NOW = "You can try again now.";

  /* A refusal's words: {"detail": "..."}, or ``fallback``. */
  function detail(body, fallback) {
    return body && typeof body.detail === "string" ? body.detail : fallback;
  }

  /* FastAPI's 422, {"detail": [{"loc": [..., "email"], "msg": "..."}]}, as
     [{field, text}]: the field the item is about and its message. */
  function invalidItems(body) {
    var items = body && Array.isArray(body.detail) ? body.detail : [];
    return items.map(function (item) {
      var loc = Array.isArray(item.loc) ? item.loc : [];
      return { field: loc[loc.length - 1], text: String(item.msg || "").replace(/^Value error, /, "") };
    });
  }

  /* A refusal's words: the messages of FastAPI's list of errors, or its detail. */
  function problem(body, fallback) {
    var text = invalidItems(body).map(function (item) { return item.text; }).join(" ");
    return text || detail(body, fallback);
  }

  /* A 409 or 404 about the slot asked for ("Slot 4 is already booked."). */
  function aboutSlot(body) {
    return /^Slot \d+ /.test(detail(body, ""));
  }

  /* What to say when there was no usable answer: a 5xx, or none at all (0). */
  function failure(status, messages) {
    return status >= 500 ? messages.unavailable : messages.unreachable;
  }

  /* A random UUID for an Idempotency-Key (crypto.randomUUID needs a secure context). */
  function newKey() {
    var crypto = window.crypto;
    if (crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  /* The Idempotency-Key of a change that may be retried: a new key for a new
     payload, the same key while the same payload is sent again after a network
     error or a 5xx; answered (below 500), the next attempt gets a new key. */
  function Attempt() {
    this.body = null;
    this.key = null;
  }

  Attempt.prototype.keyFor = function (payload) {
    var body = JSON.stringify(payload);
    if (this.body !== body) {
      this.body = body;
      this.key = newKey();
    }
    return this.key;
  };

  Attempt.prototype.answered = function (status) {
    if (status < 500) this.body = null;
  };

  /* The payload sent and not yet answered, or null. */
  Attempt.prototype.pending = function () {
    try {
      return this.body === null ? null : JSON.parse(this.body);
    } catch (e) {
      return null;
    }
  };

  // -- holds --------------------------------------------------------------------

  /* The time a page holds for its visitor (POST /holds) so that nobody takes it
     while they decide, given back (DELETE /holds/{id}) when they pick another or
     move on. ``send(method, path, payload, token)`` asks the API (kit.request). */
  function Holds(send) {
    this.send = send;
    this.held = null; // {slotId, slot, id, token, expires}: the time held
    this.pending = null; // the answer of a hold being placed
    this.seq = 0; // bumped whenever a hold is given up, so late answers are given back
  }

  /* Hold ``slot``, giving back the time held before. ``answered(status)``
     follows with the answer's status (0: none), unless the hold was given up
     meanwhile: then a hold that was made is given back at once. */
  Holds.prototype.place = function (slot, answered) {
    var self = this;
    this.release();
    var seq = this.seq;
    this.pending = this.send("POST", "/holds", { slot_id: slot.id }).then(function (answer) {
      var body = answer.body;
      if (seq !== self.seq) { // given up meanwhile (another time picked): give it back
        if (answer.status === 201 && body) self.giveBack(body.hold_id, body.hold_token);
        return;
      }
      self.pending = null;
      if (answer.status === 201 && body && body.hold_token) {
        self.held = {
          slotId: slot.id, slot: slot, id: body.hold_id, token: body.hold_token,
          expires: Date.parse(body.expires_at)
        };
      }
      answered(answer.status === 201 && !self.held ? 0 : answer.status);
    }, function () {
      if (seq !== self.seq) return;
      self.pending = null;
      answered(0);
    });
  };

  Holds.prototype.giveBack = function (id, token) {
    this.send("DELETE", "/holds/" + encodeURIComponent(id), undefined, token).catch(function () {});
  };

  /* Give the held time back now (it would run out by itself in a few minutes). */
  Holds.prototype.release = function () {
    this.seq += 1;
    this.pending = null;
    if (this.held) {
      this.giveBack(this.held.id, this.held.token);
      this.held = null;
    }
  };

  /* The hold is gone without giving it back: it became the booking, or the
     API said the time is taken. */
  Holds.prototype.drop = function () {
    this.held = null;
  };

  /* The hold's token if it is on ``slot``, else null. */
  Holds.prototype.tokenFor = function (slot) {
    return this.held && this.held.slotId === slot.id ? this.held.token : null;
  };

  /* Whether slot ``id`` is held by this page, or a hold is being placed. */
  Holds.prototype.mine = function (id) {
    return Boolean(this.pending || (this.held && this.held.slotId === id));
  };

  // -- the list of free times (the widget's; the manage page's to move to) -----

  /* Where the list's times are from: the visitor's zone, and the rep's in small type. */
  function zonesIntro(repName) {
    return "Times are in your time zone (" + visitorZone.replace(/_/g, " ") +
      "); the rep\u2019s time (" + repName + ") is in small type.";
  }

  /* ``slots`` (in time order) into ``container``, a group a day: a ``list.heading``
     element with the day's name (its id ``list.idPrefix`` and the day), then the
     day's times, each the item ``list.item(slot, start)``. */
  function slotDays(container, slots, list) {
    var times = null;
    var lastKey = null;
    slots.forEach(function (slot) {
      var start = new Date(slot.start_time);
      var key = list.formats.dayKey.format(start);
      if (key !== lastKey) {
        lastKey = key;
        var day = el("div", "sw-day");
        var heading = el(list.heading, "sw-day-title", list.formats.dayLabel.format(start));
        heading.id = list.idPrefix + key;
        day.setAttribute("role", "group");
        day.setAttribute("aria-labelledby", heading.id);
        times = el("ul", "sw-slots");
        day.appendChild(heading);
        day.appendChild(times);
        container.appendChild(day);
      }
      times.appendChild(list.item(slot, start));
    });
  }

  /* A free time's item: a toggle button (``.slotId`` the slot's id) with the
     visitor's ``time`` and, in small type, the rep's. */
  function slotItem(slot, time, repTime, pressed, onPick) {
    var item = el("li", "sw-slot-item");
    var button = el("button", "sw-slot");
    button.type = "button";
    button.setAttribute("aria-pressed", pressed ? "true" : "false");
    button.appendChild(el("span", "sw-time", time));
    var rep = el("span", "sw-rep", repTime);
    rep.appendChild(el("span", "sw-visually-hidden", " rep\u2019s time"));
    button.appendChild(el("span", "sw-visually-hidden", " your time, "));
    button.appendChild(rep);
    button.addEventListener("click", onPick);
    button.slotId = slot.id;
    item.appendChild(button);
    return item;
  }

  /* The button of ``slot`` (or none, for null) pressed, the others not. */
  function pressSlot(buttons, slot) {
    buttons.forEach(function (button) {
      button.setAttribute("aria-pressed", slot && button.slotId === slot.id ? "true" : "false");
    });
  }

  /* ``slots`` by start time. */
  function byStart(slots) {
    return slots.sort(function (a, b) { return Date.parse(a.start_time) - Date.parse(b.start_time); });
  }

  // -- what the page says ---------------------------------------------------------

  /* A status message with a tone: null, "error" or "notice". */
  function say(node, text, tone) {
    node.textContent = text || "";
    node.classList.toggle("sw-status--error", tone === "error");
    node.classList.toggle("sw-status--notice", tone === "notice");
  }

  /* The tone ``node`` says its message in. */
  function toneOf(node) {
    return node.classList.contains("sw-status--error") ? "error"
      : node.classList.contains("sw-status--notice") ? "notice" : null;
  }

  /* An error next to the field (or fields) that caused it; "" or null clears it. */
  function fieldError(node, text, inputs) {
    node.textContent = text || "";
    node.hidden = !text;
    (inputs || []).forEach(function (input) {
      if (text) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    });
  }

  window.SchedulerKit = {
    el: el,
    clear: clear,
    download: download,
    visitorZone: visitorZone,
    zoneOrUtc: zoneOrUtc,
    zoneName: zoneName,
    formats: formats,
    range: range,
    RepClock: RepClock,
    request: request,
    countdown: countdown,
    tooManyMessage: tooManyMessage,
    TRY_AGAIN_NOW: TRY_AGAIN_NOW,
    detail: detail,
    invalidItems: invalidItems,
    problem: problem,
    aboutSlot: aboutSlot,
    failure: failure,
    Attempt: Attempt,
    Holds: Holds,
    zonesIntro: zonesIntro,
    slotDays: slotDays,
    slotItem: slotItem,
    pressSlot: pressSlot,
    byStart: byStart,
    say: say,
    toneOf: toneOf,
    fieldError: fieldError
  };
})();
