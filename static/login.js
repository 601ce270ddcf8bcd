// The login page: the token a link carried is in the form now, so it leaves the address bar
// and the browser's history.
"use strict";

if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", "/login");
}
