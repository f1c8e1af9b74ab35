// HttpArena's /baseline11 for nginx's njs module (Debian: libnginx-mod-http-js): the sum of the
// query values, plus the request body as an integer for a POST. nginx has read the body,
// Content-Length or chunked, before js_content runs. Same rules as the Rust peers
// (benches/peers/common/src/arena.rs): a value or body that is not an integer is a 400, empty
// pairs are skipped, an empty body counts 0. Numbers are doubles here, exact up to 2^53.

function integer(text) {
    return /^[+-]?[0-9]+$/.test(text) ? Number(text) : NaN;
}

// Indexed loops: njs 0.7 (Debian 12) has no for...of.
function querySum(query) {
    const pairs = query.split('&');
    let sum = 0;
    for (let i = 0; i < pairs.length; i++) {
        const pair = pairs[i];
        if (pair === '') {
            continue;
        }
        const at = pair.indexOf('=');
        sum += at < 0 ? NaN : integer(pair.slice(at + 1));
    }
    return sum;
}

function bodyValue(body) {
    const text = (body || '').trim();
    return text === '' ? 0 : integer(text);
}

function baseline11(r) {
    if (r.method !== 'GET' && r.method !== 'POST') {
        r.headersOut['Allow'] = 'GET, POST';
        r.return(405);
        return;
    }
    let sum = querySum(r.variables.args || '');
    if (r.method === 'POST') {
        sum += bodyValue(r.requestText);
    }
    if (!Number.isSafeInteger(sum)) {
        r.return(400);
        return;
    }
    r.headersOut['Content-Type'] = 'text/plain';
    r.return(200, String(sum));
}

export default { baseline11 };
