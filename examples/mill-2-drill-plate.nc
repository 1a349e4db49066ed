%
O2001 (InfoMobil lab - mill-2 - drill a 4-hole pattern)
(Work zero G54: front-left corner, top face of the plate.)
G21 G17 G40 G49 G80 G90 G94
G28 G91 Z0.
G90
T2 M6 (drill 6 mm)
G54 G0 X20. Y20. S2500 M3
G43 Z50. H2
M8
G99 G81 X20. Y20. Z-12. R2. F250
X80.
Y60.
G98 X20.
G80
G0 Z50.
M9
M5
G28 G91 Z0.
G90
M30
%
