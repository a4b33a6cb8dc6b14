-- Neovim 0.11, headless: attach `shapelens serve` with vim.lsp.start (the way the README tells users to),
-- open the test model, wait for its diagnostics, read the inlay hints and a hover, apply the SL101 quick fix
-- through textDocument/codeAction, wait for SL101 to go, read the hints again, and write it all as JSON.
-- Run: nvim --headless --clean -c "luafile nvim_shapelens.lua"
-- Environment: SHAPELENS_CMD (JSON list: the server command), SHAPELENS_FILE, SHAPELENS_OUT,
-- SHAPELENS_TIMEOUT_MS (for the first trace), SHAPELENS_HOVER (JSON [line, character], 0-based),
-- SHAPELENS_EXPECT_AFTER (JSON {"line0": "label"}: the hints to wait for after the fix).

local out_path = assert(os.getenv("SHAPELENS_OUT"), "SHAPELENS_OUT")
local result = { steps = {} }

local function write_out()
  local handle = assert(io.open(out_path, "w"))
  handle:write(vim.json.encode(result))
  handle:close()
end

local function step(name)
  table.insert(result.steps, { name = name, ms = math.floor(vim.uv.hrtime() / 1e6) })
end

local function main()
  local cmd = vim.json.decode((assert(os.getenv("SHAPELENS_CMD"), "SHAPELENS_CMD")))
  local file = assert(os.getenv("SHAPELENS_FILE"), "SHAPELENS_FILE")
  local timeout = tonumber(os.getenv("SHAPELENS_TIMEOUT_MS") or "90000")
  local hover_at = vim.json.decode(os.getenv("SHAPELENS_HOVER") or "null")
  result.nvim = tostring(vim.version())

  vim.cmd.edit(vim.fn.fnameescape(file))
  local bufnr = vim.api.nvim_get_current_buf()
  vim.bo[bufnr].filetype = "python"

  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.textDocument.inlayHint = { dynamicRegistration = false, resolveSupport = { properties = {} } }
  capabilities.workspace.inlayHint = { refreshSupport = true }
  -- the hints are compared with the CPU run's numbers: the symbolic labels (#13) off
  local settings = { shapelens = { trusted = true, debounceMs = 100, inlayHints = { symbolic = "off" } } }
  local client_id = vim.lsp.start({
    name = "shapelens",
    cmd = cmd,
    root_dir = vim.fs.dirname(file),
    capabilities = capabilities,
    init_options = { settings = settings },
    settings = settings,
  }, { bufnr = bufnr })
  assert(client_id, "vim.lsp.start returned no client")
  local client = assert(vim.lsp.get_client_by_id(client_id))
  vim.lsp.inlay_hint.enable(true, { bufnr = bufnr })
  step("started")

  local function codes()
    local found = {}
    for _, d in ipairs(vim.diagnostic.get(bufnr)) do
      found[tostring(d.code)] = d
    end
    return found
  end

  local function diagnostics()
    local list = {}
    for _, d in ipairs(vim.diagnostic.get(bufnr)) do
      table.insert(list, {
        code = d.code,
        lnum = d.lnum,
        col = d.col,
        severity = d.severity,
        message = d.message,
        source = d.source,
      })
    end
    return list
  end

  local function label_text(label)
    if type(label) == "string" then
      return label
    end
    local parts = {}
    for _, part in ipairs(label) do
      table.insert(parts, part.value)
    end
    return table.concat(parts)
  end

  local function inlay_hints()
    local params = {
      textDocument = vim.lsp.util.make_text_document_params(bufnr),
      range = {
        start = { line = 0, character = 0 },
        ["end"] = { line = vim.api.nvim_buf_line_count(bufnr), character = 0 },
      },
    }
    local response = client:request_sync("textDocument/inlayHint", params, 20000, bufnr)
    assert(response and not response.err, "textDocument/inlayHint failed: " .. vim.inspect(response))
    local hints = {}
    for _, hint in ipairs(response.result or {}) do
      table.insert(hints, {
        line = hint.position.line,
        character = hint.position.character,
        label = label_text(hint.label),
      })
    end
    -- What vim.lsp.inlay_hint itself holds for the buffer (the editor's own rendering path).
    local shown = vim.lsp.inlay_hint.get({ bufnr = bufnr })
    return hints, #shown
  end

  -- 1. Diagnostics: SL201 is static, SL101 needs the trace.
  local ok = vim.wait(timeout, function()
    local found = codes()
    return found.SL101 ~= nil and found.SL201 ~= nil
  end, 100)
  result.diagnostics = diagnostics()
  assert(ok, "no SL101 and SL201 within " .. timeout .. " ms: " .. vim.inspect(result.diagnostics))
  step("diagnostics")

  -- 2. Inlay hints (once the trace's hints are in: the flatten line has one).
  local hints, shown
  vim.wait(20000, function()
    hints, shown = inlay_hints()
    return #hints > 0 and shown > 0
  end, 200)
  result.hints, result.shown_hints = hints, shown
  step("hints")

  -- 3. Hover.
  if hover_at then
    local params = {
      textDocument = vim.lsp.util.make_text_document_params(bufnr),
      position = { line = hover_at[1], character = hover_at[2] },
    }
    local response = client:request_sync("textDocument/hover", params, 20000, bufnr)
    local contents = response and response.result and response.result.contents
    result.hover = type(contents) == "table" and (contents.value or vim.inspect(contents)) or tostring(contents)
    step("hover")
  end

  -- 4. The SL101 quick fix through textDocument/codeAction, applied like a user's code action would be.
  local sl101 = codes().SL101
  local lsp_diag = sl101.user_data and sl101.user_data.lsp
  local params = {
    textDocument = vim.lsp.util.make_text_document_params(bufnr),
    range = {
      start = { line = sl101.lnum, character = sl101.col },
      ["end"] = { line = sl101.end_lnum or sl101.lnum, character = sl101.end_col or sl101.col },
    },
    context = { diagnostics = { lsp_diag }, only = { "quickfix" } },
  }
  local response = client:request_sync("textDocument/codeAction", params, 20000, bufnr)
  assert(response and not response.err, "textDocument/codeAction failed: " .. vim.inspect(response))
  result.actions = {}
  local chosen
  for _, action in ipairs(response.result or {}) do
    table.insert(result.actions, action.title)
    if not chosen and action.title:match("^Set in_features") then
      chosen = action
    end
  end
  assert(chosen, "no 'Set in_features' action among " .. vim.inspect(result.actions))
  if not chosen.edit then
    local resolved = client:request_sync("codeAction/resolve", chosen, 20000, bufnr)
    chosen = resolved and resolved.result or chosen
  end
  vim.lsp.util.apply_workspace_edit(chosen.edit, client.offset_encoding)
  result.fixed_line = vim.api.nvim_buf_get_lines(bufnr, sl101.lnum, sl101.lnum + 1, false)[1]
  step("fix applied")

  -- 5. SL101 goes, SL201 stays, and the hints are those of the fixed model.
  local gone = vim.wait(timeout, function()
    local found = codes()
    return found.SL101 == nil and found.SL201 ~= nil
  end, 100)
  result.diagnostics_after = diagnostics()
  assert(gone, "SL101 still there after the fix: " .. vim.inspect(result.diagnostics_after))
  step("SL101 gone")
  -- Wait for the hints the test expects after the fix (SHAPELENS_EXPECT_AFTER: {"line0": "label"}); the
  -- test judges what we return, this only avoids reading hints of a trace that is still running.
  local expect = vim.json.decode(os.getenv("SHAPELENS_EXPECT_AFTER") or "{}")
  vim.wait(timeout, function()
    local by_line = {}
    for _, hint in ipairs((inlay_hints())) do
      by_line[tostring(hint.line)] = (by_line[tostring(hint.line)] and (by_line[tostring(hint.line)] .. " | ") or "")
        .. hint.label
    end
    for line, text in pairs(expect) do
      if by_line[line] ~= text then
        return false
      end
    end
    return true
  end, 200)
  result.hints_after = inlay_hints()
  step("hints after")
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  result.error = tostring(err)
end
write_out()
vim.schedule(function()
  for _, client in ipairs(vim.lsp.get_clients()) do
    client:stop(true)
  end
  vim.cmd(ok and "qa!" or "cquit! 1")
end)
