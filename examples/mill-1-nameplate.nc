(InfoMobil lab - mill-1 - pocket with rounded corners in a 60 x 40 mm aluminium plate)
(Work zero G54: front-left corner of the stock, top face. Tool: 6 mm flat end mill.)
G21 G90 G94 G17 G54
G0 Z5
M3 S9000
M8
G0 X10 Y10
G1 Z-1 F150
(roughing pass, climb milling around the pocket)
G1 X50 F400
G3 X52 Y12 I0 J2
G1 Y28
G3 X50 Y30 I-2 J0
G1 X10
G3 X8 Y28 I0 J-2
G1 Y12
G3 X10 Y10 I2 J0
G1 Z-2 F150
G1 X50 F400
G3 X52 Y12 R2
G1 Y28
G3 X50 Y30 R2
G1 X10
G3 X8 Y28 R2
G1 Y12
G3 X10 Y10 R2
(circle in the middle, helical entry)
G0 Z1
G0 X30 Y20
G0 X36
G2 X36 Y20 Z-1.5 I-6 J0 F200
G2 X36 Y20 I-6 J0
G0 Z5
M9
M5
G0 X0 Y45
M30
