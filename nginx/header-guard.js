// njs module loaded by nginx/push.conf.template (rendered as {{HEADER_GUARD}}).
//
// The push processes' HTTP parser (uWebSockets.js 20.57) answers a request header that holds a
// control character with a bare 400 of its own, without the error catalogue's code and reason
// (its 20.30 predecessor never answered: nginx reported 502 after trying each process). nginx
// itself lets such values through (it refuses only NUL, CR and LF). So the edge checks every
// header here and answers 400 4115 at once, with the reason.
//
// RFC 9110 allows in a field value visible characters, space, horizontal tab and obs-text (bytes
// 0x80-0xFF); everything else below 0x20, and DEL, is refused. Names with such bytes are refused
// by nginx before this runs; they are checked as well so the rule does not depend on that.
var CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

// '1' when a header is malformed, '' otherwise: the value of $push_bad_header.
function badHeader(r) {
  var raw = r.rawHeadersIn;
  for (var i = 0; i < raw.length; i++) {
    if (CONTROL.test(raw[i][0]) || CONTROL.test(raw[i][1])) return '1';
  }
  return '';
}

export default { badHeader };
