/*
 * scheduler-app booking widget. Embed it with one element and one tag:
 *
 *   <div data-scheduler-api="https://book.example.com"></div>
 *   <script src="https://book.example.com/widget.js" defer></script>
 *
 * and list the page's origin in the API's SCHEDULER_CORS_ORIGINS. An empty
 * data-scheduler-api means the origin widget.js came from. Optional:
 * data-scheduler-timezone="America/New_York" names the rep's time zone
 * (otherwise the rep's time is read from the offsets the API sends).
 *
 * No dependencies. Text from the API is only ever inserted as text, and there
 * is no eval, inline script, inline style or inline event handler, so the
 * widget runs under a strict Content-Security-Policy that allows the API's
 * origin in script-src, style-src and connect-src.
 */
(function () {
  "use strict";

  var TIMEOUT_MS = 15000;
  var script = document.currentScript;
  var scriptOrigin = script && script.src
    ? new URL(script.src, document.baseURI).origin
    : window.location.origin;
  var counter = 0;

  var MESSAGES = {
    loading: "Loading free times\u2026",
    booking: "Booking your meeting\u2026",
    pick: function (count) {
      return count === 1
        ? "1 free time. Pick it, then enter your email."
        : count + " free times. Pick one, then enter your email.";
    },
    empty: "There are no free times right now. Please check again later.",
    taken: "Sorry, that time was just taken. Please pick another one.",
    unreachable: "We could not reach the booking service. Please check your connection and try again.",
    unavailable: "The booking service is not available right now. Please try again in a moment.",
    checkEmail: "Please check your email address.",
    noEmail: "Please enter your email address.",
    noSlot: "Please pick a time first."
  };

  // Formats in the visitor's own time zone (the browser's default).
  var visitorZone = new Intl.DateTimeFormat().resolvedOptions().timeZone;
  var dayKey = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit" });
  var dayLabel = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
  var dateLabel = new Intl.DateTimeFormat(undefined, {
    weekday: "long", day: "numeric", month: "long", year: "numeric"
  });
  var timeLabel = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });

  var ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function range(format, start, end) {
    return typeof format.formatRange === "function"
      ? format.formatRange(start, end)
      : format.format(start) + " \u2013 " + format.format(end);
  }

  /* The rep's clock: a named zone if the page gave one, else the API's offsets. */
  function RepClock(zone) {
    this.zone = null;
    if (zone) {
      try {
        this.format = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", timeZone: zone });
        this.zone = zone;
        this.name = zone.split("/").pop().replace(/_/g, " ");
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

  function Widget(root) {
    counter += 1;
    this.root = root;
    this.api = (root.getAttribute("data-scheduler-api") || scriptOrigin).replace(/\/+$/, "");
    this.rep = new RepClock(root.getAttribute("data-scheduler-timezone"));
    this.prefix = "scheduler-widget-" + counter;
    this.slots = [];
    this.buttons = [];
    this.selected = null;
    this.busy = false;
    this.acting = false; // a visitor's click is being answered: move focus where it helps
    this.build();
    this.load();
  }

  Widget.prototype.build = function () {
    var self = this;
    var root = this.root;
    clear(root); // drop any fallback content the page put inside
    root.classList.add("scheduler-widget");
    root.setAttribute("role", "region");
    if (!root.hasAttribute("aria-label")) root.setAttribute("aria-label", "Book a meeting");

    this.status = el("p", "sw-status");
    this.status.setAttribute("role", "status");
    this.status.setAttribute("aria-live", "polite");

    this.retry = el("button", "sw-button sw-button--secondary sw-retry", "Try again");
    this.retry.type = "button";
    this.retry.hidden = true;
    this.retry.addEventListener("click", function () {
      self.acting = true;
      self.load();
    });

    this.intro = el("p", "sw-intro");
    this.intro.hidden = true;
    this.days = el("div", "sw-days");

    this.form = el("form", "sw-form");
    this.form.noValidate = true; // the API checks the email; its answer is shown by the field
    this.form.hidden = true;
    this.choice = el("p", "sw-choice");
    var emailId = this.prefix + "-email";
    var errorId = this.prefix + "-email-error";
    var label = el("label", "sw-label", "Your email");
    label.htmlFor = emailId;
    this.email = el("input", "sw-input");
    this.email.type = "email";
    this.email.id = emailId;
    this.email.name = "email";
    this.email.autocomplete = "email";
    this.email.required = true;
    this.email.setAttribute("aria-describedby", errorId);
    this.emailError = el("p", "sw-field-error");
    this.emailError.id = errorId;
    this.emailError.hidden = true;
    this.submit = el("button", "sw-button sw-submit", "Book this time");
    this.submit.type = "submit";
    this.form.appendChild(this.choice);
    this.form.appendChild(label);
    this.form.appendChild(this.email);
    this.form.appendChild(this.emailError);
    this.form.appendChild(this.submit);
    this.form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.book();
    });
    this.email.addEventListener("input", function () { self.fieldError(null); });

    this.confirmation = el("div", "sw-confirmation");
    this.confirmation.tabIndex = -1;
    this.confirmation.hidden = true;

    [this.status, this.retry, this.intro, this.days, this.form, this.confirmation].forEach(function (node) {
      root.appendChild(node);
    });
  };

  Widget.prototype.say = function (text, tone) {
    this.status.textContent = text;
    this.status.classList.toggle("sw-status--error", tone === "error");
    this.status.classList.toggle("sw-status--notice", tone === "notice");
  };

  Widget.prototype.setBusy = function (busy) {
    this.busy = busy;
    this.root.setAttribute("aria-busy", busy ? "true" : "false");
    this.submit.disabled = busy;
    this.buttons.forEach(function (button) { button.disabled = busy; });
  };

  /* fetch with a timeout; resolves {status, body} for any HTTP answer, rejects
     when there is none (network down, refused by CORS, timed out). */
  Widget.prototype.request = function (method, path, payload) {
    var options = {
      method: method,
      mode: "cors",
      credentials: "omit",
      cache: "no-store",
      headers: { Accept: "application/json" }
    };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    var timer = null;
    if (typeof AbortController === "function") {
      var controller = new AbortController();
      options.signal = controller.signal;
      timer = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
    }
    return fetch(this.api + path, options).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (timer) clearTimeout(timer);
        return { status: response.status, body: body };
      });
    }, function (error) {
      if (timer) clearTimeout(timer);
      throw error;
    });
  };

  Widget.prototype.fail = function (status) {
    this.setBusy(false);
    this.say(status >= 500 ? MESSAGES.unavailable : MESSAGES.unreachable, "error");
    this.retry.textContent = "Try again";
    this.retry.hidden = false;
    if (this.acting) this.retry.focus();
    this.acting = false;
  };

  Widget.prototype.load = function (notice) {
    var self = this;
    this.retry.hidden = true;
    this.setBusy(true);
    this.say(notice || MESSAGES.loading, notice ? "notice" : null);
    this.request("GET", "/availability").then(function (answer) {
      if (answer.status === 200 && Array.isArray(answer.body)) {
        self.render(answer.body, notice);
      } else {
        self.fail(answer.status);
      }
    }, function () {
      self.fail(0);
    });
  };

  Widget.prototype.render = function (slots, notice) {
    var self = this;
    this.slots = slots;
    this.buttons = [];
    var stillFree = this.selected && slots.some(function (s) { return s.id === self.selected.id; });
    if (!stillFree) this.select(null);
    clear(this.days);
    this.setBusy(false);

    if (!slots.length) {
      this.intro.hidden = true;
      this.say(notice ? notice + " " + MESSAGES.empty : MESSAGES.empty, notice ? "notice" : null);
      this.retry.textContent = "Check again";
      this.retry.hidden = false;
      if (this.acting) this.retry.focus();
      this.acting = false;
      return;
    }
    this.intro.textContent = "Times are in your time zone (" + visitorZone.replace(/_/g, " ") +
      "); the rep\u2019s time (" + this.rep.label(slots[0].start_time) + ") is in small type.";
    this.intro.hidden = false;

    var list = null;
    var lastKey = null;
    slots.forEach(function (slot) {
      var start = new Date(slot.start_time);
      var key = dayKey.format(start);
      if (key !== lastKey) {
        lastKey = key;
        var day = el("div", "sw-day");
        var headingId = self.prefix + "-day-" + key;
        var heading = el("h3", "sw-day-title", dayLabel.format(start));
        heading.id = headingId;
        day.setAttribute("role", "group");
        day.setAttribute("aria-labelledby", headingId);
        list = el("ul", "sw-slots");
        day.appendChild(heading);
        day.appendChild(list);
        self.days.appendChild(day);
      }
      list.appendChild(self.slotItem(slot, start));
    });
    this.say(notice || MESSAGES.pick(slots.length), notice ? "notice" : null);
    if (this.acting) {
      // The control that was used is gone or hidden: go on from the list or the form.
      (this.selected ? this.submit : this.buttons[0]).focus();
    }
    this.acting = false;
  };

  Widget.prototype.slotItem = function (slot, start) {
    var self = this;
    var item = el("li", "sw-slot-item");
    var button = el("button", "sw-slot");
    button.type = "button";
    button.setAttribute("aria-pressed", this.selected && this.selected.id === slot.id ? "true" : "false");
    button.appendChild(el("span", "sw-time", timeLabel.format(start)));
    var rep = el("span", "sw-rep", this.rep.time(slot.start_time));
    rep.appendChild(el("span", "sw-visually-hidden", " rep\u2019s time"));
    button.appendChild(el("span", "sw-visually-hidden", " your time, "));
    button.appendChild(rep);
    button.addEventListener("click", function () {
      self.select(slot);
      self.email.focus();
    });
    button.slotId = slot.id;
    this.buttons.push(button);
    item.appendChild(button);
    return item;
  };

  Widget.prototype.select = function (slot) {
    this.selected = slot;
    this.buttons.forEach(function (button) {
      button.setAttribute("aria-pressed", slot && button.slotId === slot.id ? "true" : "false");
    });
    this.form.hidden = !slot;
    if (slot) {
      var start = new Date(slot.start_time);
      clear(this.choice);
      this.choice.appendChild(el("span", "sw-choice-day", dayLabel.format(start) + ", "));
      this.choice.appendChild(el("span", "sw-choice-time", range(timeLabel, start, new Date(slot.end_time))));
    }
  };

  Widget.prototype.fieldError = function (message) {
    this.emailError.textContent = message || "";
    this.emailError.hidden = !message;
    if (message) {
      this.email.setAttribute("aria-invalid", "true");
    } else {
      this.email.removeAttribute("aria-invalid");
    }
  };

  Widget.prototype.book = function () {
    var self = this;
    if (this.busy) return;
    if (!this.selected) {
      this.say(MESSAGES.noSlot, "error");
      return;
    }
    var email = this.email.value.trim();
    if (!email) {
      this.fieldError(MESSAGES.noEmail);
      this.say(MESSAGES.checkEmail, "error");
      this.email.focus();
      return;
    }
    this.fieldError(null);
    this.retry.hidden = true;
    this.acting = true;
    this.setBusy(true);
    this.say(MESSAGES.booking, null);
    this.request("POST", "/book", { slot_id: this.selected.id, email: email }).then(function (answer) {
      if (answer.status === 200 && answer.body && answer.body.slot) {
        self.confirm(answer.body.slot);
      } else if (answer.status === 409 || answer.status === 404) {
        self.select(null);
        self.load(MESSAGES.taken);
      } else if (answer.status === 422) {
        self.invalid(answer.body);
      } else {
        self.fail(answer.status);
      }
    }, function () {
      self.fail(0);
    });
  };

  /* FastAPI's 422: {"detail": [{"loc": ["body", "email"], "msg": "..."}, ...]} */
  Widget.prototype.invalid = function (body) {
    this.setBusy(false);
    this.acting = false;
    var detail = body && Array.isArray(body.detail) ? body.detail : [];
    var emailMessages = [];
    var others = [];
    detail.forEach(function (item) {
      var loc = Array.isArray(item.loc) ? item.loc : [];
      var text = String(item.msg || "is not valid").replace(/^Value error, /, "");
      text = text.charAt(0).toUpperCase() + text.slice(1);
      (loc[loc.length - 1] === "email" ? emailMessages : others).push(text);
    });
    if (emailMessages.length) {
      this.fieldError(emailMessages.join(" "));
      this.say(MESSAGES.checkEmail, "error");
      this.email.focus();
    } else {
      this.say(others.length ? others.join(" ") : MESSAGES.unavailable, "error");
    }
  };

  Widget.prototype.confirm = function (slot) {
    this.setBusy(false);
    this.acting = false;
    var start = new Date(slot.start_time);
    var end = new Date(slot.end_time);
    clear(this.confirmation);
    this.confirmation.appendChild(el("h3", "sw-confirmation-title", "You\u2019re booked"));
    this.confirmation.appendChild(el("p", "sw-confirmation-date", dateLabel.format(start)));
    this.confirmation.appendChild(el("p", "sw-confirmation-time",
      range(timeLabel, start, end) + " your time"));
    this.confirmation.appendChild(el("p", "sw-rep",
      this.rep.range(slot.start_time, slot.end_time) + " rep\u2019s time (" + this.rep.label(slot.start_time) + ")"));
    if (slot.booked_by_email) {
      this.confirmation.appendChild(el("p", "sw-confirmation-email", "Booked for " + slot.booked_by_email + "."));
    }
    this.say("", null);
    this.status.hidden = true;
    this.intro.hidden = true;
    this.days.hidden = true;
    this.form.hidden = true;
    this.retry.hidden = true;
    this.confirmation.hidden = false;
    this.confirmation.focus();
  };

  function addStylesheet() {
    var href = scriptOrigin + "/widget.css";
    var links = document.querySelectorAll('link[rel="stylesheet"]');
    for (var i = 0; i < links.length; i += 1) {
      if (links[i].href === href) return;
    }
    var link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.appendChild(link);
  }

  function start() {
    var roots = document.querySelectorAll("[data-scheduler-api]");
    if (roots.length) addStylesheet();
    for (var i = 0; i < roots.length; i += 1) {
      if (!roots[i].hasAttribute("data-scheduler-ready")) {
        roots[i].setAttribute("data-scheduler-ready", "");
        new Widget(roots[i]);
      }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
