/**
 * The response side of sticky sessions, as gorouter's `setupStickySession`
 * (proxy/round_tripper/proxy_round_tripper.go): when to add `__VCAP_ID__`
 * and which attributes it copies. String work only, no regexes; called only
 * when a response sets cookies, asks for Negotiate, or the request's sticky
 * instance was not the one that answered.
 * @module
 */

/** The sticky-session cookie the router sets and reads. */
export const VCAP_ID = "__VCAP_ID__";

/** gorouter's `AuthNegotiateHeaderCookieMaxAgeInSeconds`. */
const NEGOTIATE_MAX_AGE = 60;

/** What decides the `__VCAP_ID__` of one response. */
export interface StickyInput {
  /** The response's Set-Cookie values, in order (undefined: none). */
  setCookies: string[] | undefined;
  /** `sticky_cookie_names`. */
  names: string[];
  /** The instance that answered (`private_instance_id`, not empty). */
  instanceId: string;
  /** The instance the request's `__VCAP_ID__` asked for, if it was sticky. */
  requested: string | undefined;
  /** The route's context path (`/` for a bare host). */
  path: string;
  /** `secure_cookies`: always mark `__VCAP_ID__` Secure. */
  secure: boolean;
  /**
   * `sticky_sessions_for_auth_negotiate` is on and the response's
   * WWW-Authenticate starts with `Negotiate`.
   */
  negotiate: boolean;
}

/**
 * The `__VCAP_ID__` Set-Cookie value to add, or undefined. As gorouter:
 * - added when the response sets a sticky cookie (the first one named in
 *   `names`), or when the request asked for another instance (it is gone
 *   or unusable) — or, with Negotiate, asked for none;
 * - never when the response sets `__VCAP_ID__` itself;
 * - HttpOnly, Path = the route's path; Expires, Secure, SameSite and
 *   Partitioned copied from the sticky cookie; its Max-Age only when it
 *   deletes the cookie (≤ 0 → `Max-Age=0`), otherwise `__VCAP_ID__` stays
 *   a session cookie; Negotiate: `Max-Age=60; SameSite=Strict`.
 */
export function stickyCookie(input: StickyInput): string | undefined {
  const { setCookies, names, instanceId, requested, negotiate } = input;
  let set = (negotiate || requested !== undefined) &&
    requested !== instanceId;
  let sticky: string | undefined;
  if (setCookies !== undefined) {
    for (const sc of setCookies) {
      const name = cookieName(sc);
      if (name === VCAP_ID) return undefined;
      if (sticky === undefined && name !== "" && names.includes(name)) {
        sticky = sc;
      }
    }
  }
  let attrs: CookieAttrs = { ...NO_ATTRS };
  if (negotiate) {
    attrs = { ...NO_ATTRS, maxAge: NEGOTIATE_MAX_AGE, sameSite: "Strict" };
  } else if (sticky !== undefined) {
    set = true;
    attrs = cookieAttrs(sticky);
  }
  if (!set) return undefined;
  let out = `${VCAP_ID}=${instanceId}; Path=${input.path || "/"}`;
  if (attrs.expires !== undefined) out += `; Expires=${attrs.expires}`;
  // Go writes a negative MaxAge as `Max-Age=0`.
  if (attrs.maxAge !== 0) out += `; Max-Age=${Math.max(attrs.maxAge, 0)}`;
  out += "; HttpOnly";
  if (attrs.secure || input.secure) out += "; Secure";
  if (attrs.sameSite !== undefined) out += `; SameSite=${attrs.sameSite}`;
  if (attrs.partitioned) out += "; Partitioned";
  return out;
}

/** The attributes `__VCAP_ID__` takes from the sticky cookie. */
interface CookieAttrs {
  /** An HTTP date, re-formatted; undefined: none or unreadable. */
  expires: string | undefined;
  /** 0: no Max-Age; < 0: delete (`Max-Age=0`); > 0: seconds. */
  maxAge: number;
  secure: boolean;
  sameSite: "Lax" | "Strict" | "None" | undefined;
  partitioned: boolean;
}

const NO_ATTRS: CookieAttrs = {
  expires: undefined,
  maxAge: 0,
  secure: false,
  sameSite: undefined,
  partitioned: false,
};

/** The cookie name of a Set-Cookie value ("" when it has none). */
function cookieName(setCookie: string): string {
  const eq = setCookie.indexOf("=");
  const semi = setCookie.indexOf(";");
  if (eq === -1 || (semi !== -1 && semi < eq)) return "";
  return setCookie.slice(0, eq).trim();
}

/** Reads the attributes of a Set-Cookie value as Go's net/http does. */
function cookieAttrs(setCookie: string): CookieAttrs {
  const a: CookieAttrs = { ...NO_ATTRS };
  const parts = setCookie.split(";");
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!.trim();
    if (part === "") continue;
    const eq = part.indexOf("=");
    const key = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    const value = eq === -1 ? "" : part.slice(eq + 1).trim();
    switch (key) {
      case "secure":
        a.secure = true;
        break;
      case "partitioned":
        a.partitioned = true;
        break;
      case "samesite": {
        const v = value.toLowerCase();
        a.sameSite = v === "lax"
          ? "Lax"
          : v === "strict"
          ? "Strict"
          : v === "none"
          ? "None"
          : undefined;
        break;
      }
      case "max-age": {
        // Go: strconv.Atoi, no leading zero on a non-zero value; ≤ 0
        // deletes. gorouter copies only the deleting value.
        if (!isAtoi(value)) break;
        const n = Number(value);
        if (n !== 0 && value[0] === "0") break;
        a.maxAge = n <= 0 ? -1 : 0;
        break;
      }
      case "expires": {
        const ms = Date.parse(value);
        if (Number.isNaN(ms)) break;
        const d = new Date(ms);
        // Go writes Expires only from year 1601 on.
        a.expires = d.getUTCFullYear() >= 1601 ? d.toUTCString() : undefined;
        break;
      }
    }
  }
  return a;
}

/** Whether Go's strconv.Atoi reads `s`: an optional sign, then digits. */
function isAtoi(s: string): boolean {
  const start = s[0] === "-" || s[0] === "+" ? 1 : 0;
  if (s.length === start) return false;
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}
