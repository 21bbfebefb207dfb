// njs module loaded by nginx/push.conf.template (rendered as {{HEADER_GUARD}}).
//
// The push processes' HTTP parser (uWebSockets.js 20.30) neither answers nor closes on a request
// header that holds a control character: it waits for the rest of a request that never comes, and
// the connection dies on its 10 s idle timer with no reply (nginx then reports 502 and tries the
// next process, so a client waited over 20 s). nginx itself lets such values through (it refuses
// only NUL, CR and LF). So the edge checks every header here and answers 400 at once.
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
