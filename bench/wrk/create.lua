-- Closed-loop Task creates for wrk, as an independent load generator for the
-- apiserver's create path (each connection sends one request and waits for
-- its answer). Every request carries a fresh name, so every answer should be
-- 201 Created; wrk reports any other status as "Non-2xx or 3xx responses".
--
--   wrk -t1 -c64 -d5s -s bench/wrk/create.lua http://127.0.0.1:PORT
--
-- The namespace is "wrk"; run against a fresh data directory.

local threads = 0
local path = "/apis/meseta.io/v1/namespaces/wrk/tasks"
local headers = { ["Content-Type"] = "application/json" }
local head = '{"apiVersion":"meseta.io/v1","kind":"Task","metadata":{"name":"'
local tail = '","namespace":"wrk","labels":{"app":"bench"},"annotations":{}},'
  .. '"spec":{"command":"sleep 3600","resources":{"cpus":0.5,"mem":64}}}'

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  n = 0
end

function request()
  n = n + 1
  return wrk.format("POST", path, headers, head .. "w" .. id .. "-" .. n .. tail)
end
