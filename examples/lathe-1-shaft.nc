%
O1001 (InfoMobil lab - lathe-1 - stepped shaft from 40 mm bar)
(Work zero G54: centre line, front face of the bar. X is a diameter.)
G21 G18 G40 G99 (feed per revolution)
G28 U0. W0.
T0101 (external turning tool)
G50 S2500 (spindle clamp for constant surface speed)
G96 S180 M3
G0 X42. Z2.
G1 Z0. F0.15
G1 X-1.6 F0.1 (face)
G0 Z2.
X38.
G1 Z-40. F0.2
G0 X40. Z2.
X34.
G1 Z-25. F0.2
X38. Z-27.
G0 X42. Z2.
X30.
G1 Z0. F0.1
G3 X34. Z-2. R2.
G0 X60. Z5.
G97 S800 M5
G28 U0. W0.
M30
%
