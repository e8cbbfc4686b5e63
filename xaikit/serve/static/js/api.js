// The JSON API of xaikit serve. Every error comes back as {"error": "..."}.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.append(key, value);
  }
  return search.toString();
}

export function url(path, params = {}) {
  const q = query(params);
  return q ? `${path}?${q}` : path;
}

// {status, body} of any JSON answer (202 and 422 included); ApiError if there is none.
export async function call(path, params = {}, options = {}) {
  let response;
  try {
    response = await fetch(url(path, params), options);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("the server cannot be reached; is `xaikit serve` still running?", 0);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status} ${response.statusText}`, response.status);
  }
  return { status: response.status, body };
}

// The body of a successful answer; ApiError with the server's message otherwise.
export async function get(path, params = {}, options = {}) {
  const { status, body } = await call(path, params, options);
  if (status >= 400) throw new ApiError(body.error || `error ${status}`, status);
  return body;
}

export async function upload(file) {
  const { status, body } = await call("/api/upload", {}, {
    method: "POST",
    body: file,
    headers: {
      "Content-Type": file.type || "application/octet-stream",
      "X-Filename": encodeURIComponent(file.name || "upload"),
    },
  });
  if (status >= 400) throw new ApiError(body.error || `error ${status}`, status);
  return body;
}

export function cancelJob(job) {
  return call(`/api/jobs/${encodeURIComponent(job)}`, {}, { method: "DELETE" }).catch(() => null);
}
