-- Loops forever at its top level (for instruction-limit tests).
while true do end
