// What a mock upstream received, recorded the same way by every mock: method, url (and its
// path and query), raw and merged headers, the exact body bytes, the body parsed as JSON
// when it is JSON, and which TCP connection it came on.

export function requestRecorder() {
  const socketIds = new WeakMap();
  let nextSocketId = 0;
  return async function record(req) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    let sid = socketIds.get(req.socket);
    if (!sid) { sid = ++nextSocketId; socketIds.set(req.socket, sid); }
    let json;
    try { json = JSON.parse(body.toString('utf8')); } catch { json = undefined; }
    const headers = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const k = req.rawHeaders[i].toLowerCase();
      headers[k] = headers[k] === undefined ? req.rawHeaders[i + 1] : `${headers[k]}, ${req.rawHeaders[i + 1]}`;
    }
    const q = req.url.indexOf('?');
    return {
      method: req.method, url: req.url, path: q < 0 ? req.url : req.url.slice(0, q), query: q < 0 ? '' : req.url.slice(q + 1),
      rawHeaders: req.rawHeaders.slice(), headers, body, json, socketId: sid, time: Date.now(),
    };
  };
}
