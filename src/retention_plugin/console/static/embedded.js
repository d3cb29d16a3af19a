// The console inside the Shopify admin. There it has no cookie session (a third-party frame's
// cookies are dropped by browsers), so every request must carry a fresh session token from App
// Bridge (shopify.idToken(), valid for a minute). A plain link or form would send none, so here
// links and forms inside the console are followed with fetch, the token in its Authorization
// header, and the page's body and styles swapped for the answer's. Served only to a page that
// was itself signed in by a token; signed in by password the console runs no script at all.
(function () {
  "use strict";
  var bridge = window.shopify;
  if (!bridge || typeof bridge.idToken !== "function" || !window.fetch || !window.DOMParser) {
    return;
  }

  function inConsole(url) {
    return url.origin === location.origin && /^\/admin(\/|$)/.test(url.pathname);
  }

  function download(resp) {
    var match = /filename="?([^";]+)"?/.exec(resp.headers.get("Content-Disposition") || "");
    return resp.blob().then(function (blob) {
      var a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = match ? match[1] : "download";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
    });
  }

  function show(html, url, push) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    document.title = doc.title;
    // Styles as the new page has them (pages may add their own), then its body.
    document.querySelectorAll("head style").forEach(function (s) { s.remove(); });
    doc.querySelectorAll("head style").forEach(function (s) { document.head.appendChild(document.adoptNode(s)); });
    document.body.replaceWith(document.adoptNode(doc.body));
    if (push) {
      history.pushState(null, "", url);
    }
    window.scrollTo(0, 0);
    var focus = document.querySelector("[role=alert], [role=status], h1");
    if (focus) {
      focus.setAttribute("tabindex", "-1");
      focus.focus({ preventScroll: true });
    }
  }

  var busy = false;

  function go(url, init, push) {
    if (busy) {
      return Promise.resolve();  // a double click sends one request, as a plain form would
    }
    busy = true;
    return Promise.resolve(bridge.idToken()).then(function (token) {
      init.headers = { Authorization: "Bearer " + token };
      init.credentials = "omit";
      return fetch(url, init);
    }).then(function (resp) {
      var type = resp.headers.get("Content-Type") || "";
      if (type.indexOf("text/html") !== 0) {
        return download(resp);
      }
      return resp.text().then(function (html) { show(html, resp.url, push); });
    }).catch(function () {
      location.assign(url);  // App Bridge or the network failed: the server says what is wrong
    }).finally(function () {
      busy = false;
    });
  }

  document.addEventListener("click", function (e) {
    var a = e.target.closest ? e.target.closest("a[href]") : null;
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey ||
        (a.target && a.target !== "_self") || a.getAttribute("href").charAt(0) === "#") {
      return;
    }
    var url = new URL(a.href, location.href);
    if (!inConsole(url)) {
      return;
    }
    e.preventDefault();
    go(url.href, { method: "GET" }, true);
  });

  document.addEventListener("submit", function (e) {
    var form = e.target;
    var url = new URL(form.getAttribute("action") || location.href, location.href);
    if (e.defaultPrevented || !inConsole(url)) {
      return;
    }
    e.preventDefault();
    var data = new URLSearchParams(new FormData(form, e.submitter || undefined));
    if ((form.getAttribute("method") || "get").toLowerCase() === "post") {
      go(url.href, { method: "POST", body: data }, true);
    } else {
      url.search = data.toString();
      go(url.href, { method: "GET" }, true);
    }
  });

  window.addEventListener("popstate", function () {
    go(location.href, { method: "GET" }, false);
  });
}());
