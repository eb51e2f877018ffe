-- auth.lua: the wrk script of every credgate benchmark run.
--
-- Set by run-bench through the environment:
--   BENCH_MODE    static  one Authorization value for every request
--                         (BENCH_AUTH, the whole value: "Bearer ..." or
--                         "Basic ...")
--                 conn    one token per connection: line N of BENCH_TOKENS
--                         for wrk thread N; run wrk with as many threads
--                         as connections, so that a thread is a connection
--                 req     a new token for every request, walking
--                         BENCH_TOKENS in order (each thread from its own
--                         offset); with Connection: close this is also a
--                         new token per connection
--   BENCH_TOKENS  file of tokens, one per line
--   BENCH_CLOSE   "1": send Connection: close (a new connection per request)
--   BENCH_THREADS the -t given to wrk (for the offsets of the req mode)
--
-- done() prints one machine-readable line, "BENCH key=value ...", that
-- run-bench reads; the latency percentiles are in microseconds.

local mode = os.getenv("BENCH_MODE") or "static"
local close = os.getenv("BENCH_CLOSE") == "1"
local tokfile = os.getenv("BENCH_TOKENS")

-- setup() runs in wrk's own Lua state, before the threads start.
local threads = {}
function setup(thread)
	thread:set("thread_id", #threads)
	table.insert(threads, thread)
end

local function read_line(path, n)
	local i = 0
	for line in io.lines(path) do
		if i == n then return line end
		i = i + 1
	end
	error("auth.lua: " .. path .. " has fewer than " .. (n + 1) .. " tokens")
end

local function headers_with(auth)
	local h = {}
	for k, v in pairs(wrk.headers) do h[k] = v end
	if not h["Host"] then
		h["Host"] = wrk.port and (wrk.host .. ":" .. wrk.port) or wrk.host
	end
	h["Authorization"] = auth
	if close then h["Connection"] = "close" end
	return h
end

local reqs, nreqs, pos

function init(args)
	local id = thread_id or 0
	if mode == "static" then
		wrk.headers = headers_with(os.getenv("BENCH_AUTH"))
	elseif mode == "conn" then
		wrk.headers = headers_with("Bearer " .. read_line(tokfile, id))
	elseif mode == "req" then
		-- Pre-format every request: building one per call would put
		-- Lua string work on the load generator's hot path.
		reqs, nreqs = {}, 0
		for line in io.lines(tokfile) do
			if line ~= "" then
				nreqs = nreqs + 1
				reqs[nreqs] = wrk.format("GET", "/", headers_with("Bearer " .. line))
			end
		end
		-- Threads start far apart so they do not send the same tokens.
		local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
		pos = math.floor(nreqs / nthreads) * id % nreqs
		wrap = 0	-- global: done() reads it with thread:get()
	else
		error("auth.lua: BENCH_MODE must be static, conn or req")
	end
end

if mode == "req" then
	function request()
		pos = pos + 1
		if pos > nreqs then
			pos = 1
			wrap = wrap + 1
		end
		return reqs[pos]
	end
end

function done(summary, latency, requests)
	local wraps = 0
	for _, t in ipairs(threads) do
		local w = t:get("wrap")
		if w and w > wraps then wraps = w end
	end
	local e = summary.errors
	io.write(string.format(
		"BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
		"err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d wraps=%d\n",
		summary.requests, summary.duration,
		latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
		e.connect, e.read, e.write, e.status, e.timeout, wraps))
end
