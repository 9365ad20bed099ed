-- wrk script for the discovery benchmark: each request carries a random device's session token
-- and a random cell. Files come from the environment: TOKENS, CELLS.
local tokens, cells = {}, {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
for line in io.lines(os.getenv("CELLS")) do cells[#cells + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))

request = function()
  local t = tokens[math.random(#tokens)]
  local c = cells[math.random(#cells)]
  local body = '{"location":{"cellId":"' .. c .. '"}}'
  return wrk.format("POST", "/uni/v1/discover",
    { ["Authorization"] = "Bearer " .. t, ["Content-Type"] = "application/json" }, body)
end
