% Hand-written MATPOWER case for the parser tests: every quirk it handles, in 6 buses.
% Bus ids are not contiguous and not sorted; 99 is isolated.
function mpc = quirks
mpc.version = '2';
mpc.baseMVA = 100;

%% bus data
%	bus_i	type	Pd	Qd	Gs	Bs	area	Vm	Va	baseKV	zone	Vmax	Vmin
mpc.bus = [ 30 2 10.0 0 0 0 1 1 0 230 1 1.1 0.9;   % first row on the '[' line
	7, 3, 0, 0, 0, 0, 1, 1, 0, 230, 1, 1.1, 0.9;
	12	1	-15.5	3.2	4.5	0	1	1	0	230	1	1.1	0.9	% negative load, shunt Gs, row ended by the newline
	5 1 20 0 0 0 1 1 0 230 1 1.1 0.9; 8 1 .5 0 0 0 1 1 0 230 1 1.1 0.9;  % two rows on one line
	99 4 0 0 0 0 1 1 0 230 1 1.1 0.9;   % isolated
];

%% generator data
%	bus	Pg	Qg	Qmax	Qmin	Vg	mBase	status	Pmax	Pmin
mpc.gen = [
	30	0	0	0	0	1	100	1	200	10;	% quadratic cost
	30	0	0	0	0	1	100	1	50	0;	% second generator on bus 30, linear cost
	7	0	0	0	0	1	100	0	80	0;	% out of service (its piecewise-linear cost is ignored)
	5	0	0	0	0	1	100	1	40	-5;	% Pmin < 0, constant cost
	99	0	0	0	0	1	100	0	10	0;	% out of service at the isolated bus: fine
];

%% generator cost data
%	2	startup	shutdown	n	c(n-1)	...	c0
mpc.gencost = [
	2	0	0	3	0.01	20	100	0;
	2	0	0	2	15	3	0	0;
	1	0	0	2	0	0	80	1000;
	2	0	0	1	42	0	0	0;
	2	0	0	2	1	0	0	0;
];

%% branch data
%	fbus	tbus	r	x	b	rateA	rateB	rateC	ratio	angle	status	angmin	angmax
mpc.branch = [
	7 30 0.01 0.1 0 100 100 100 0 0 1 -30 30;	% tap 0 -> 1
	30 12 0.01 0.2 0 0 0 0 0.95 0 1 -30 30;	% rateA 0 -> unlimited, off-nominal tap
	12, 5, 0.0, -0.05, 0, 50, 50, 50, 1.0, -11.4, 1, -30, 30;	% phase shifter with a negative reactance
	5 8 0.01 0.1 0 100 100 100 0 0 0 -30 30;	% out of service
	8 7 0 0.25 0 80 80 80 0 30 1 -30 30; 7 12 0.02 0.3 0 60 60 60 1e0 0 1 -30 30;
	99 8 0.01 0 0 0 0 0 0 0 0 -30 30;	% out of service, at the isolated bus, x = 0: fine
];

mpc.dcline = [];

mpc.bus_name = {
	'Bus 30';
	'odd; name % not a comment';
	'Bus 12';
};
